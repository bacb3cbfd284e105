"""The staff app's journey figures against a small fixture computed by hand; a draft's preview writes nothing."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.db import utcnow
from loyalty.members.models import Member
from loyalty.outreach import rules
from loyalty.outreach import service as outreach
from loyalty.outreach.models import Broadcast, OutreachSend
from loyalty.reports import outreach as journeys
from tests.loyalty.corekit import T0, buy, campaign, counts, join
from tests.loyalty.test_reports import DAY, _fixture

Z95 = 1.959963984540054


def _send(s: Any, member: int, status: str, at: Any, reason: str | None = None, journey: str = "welcome") -> None:
    s.add(OutreachSend(idem_key=f"{member}:{journey}:day0:join", member_id=member, journey=journey, step="day0",
                       occasion="join", kind="marketing", arm="control" if status == "control" else "treatment",
                       status=status, reason=reason, facts={}, planned_at=T0, due_at=T0,
                       done_at=None if status == "due" else at))


def _welcome_fixture() -> dict[str, int]:
    f = _fixture()  # m1 buys ¥100 on day 1 and ¥50 on day 2; m3 buys ¥30 on day 2
    m4, m5, m6, m7 = (join(T0, store_code="RA1") for _ in range(4))
    buy(m6, "80.00", T0 + 8 * DAY, store_code="RA1")  # 8 days after its control moment: not attributed
    campaign("JRN10", discount_fen=1000)
    c = db.run(coupons.claim, f["m1"], "JRN10", key="jrn-1", now=T0)
    db.run(coupons.redeem, c.coupon.code, order_amount_fen=10000, order_ref="ORD-J1", store_code="RA1",
           now=T0 + DAY)

    def sends(s: Any) -> None:
        _send(s, f["m1"], "sent", T0)
        _send(s, f["m2"], "failed", T0 + DAY)
        _send(s, m4, "skipped", T0, reason="frequency_cap")  # skipped at send time: still treatment
        _send(s, m5, "skipped", T0, reason="opted_out")  # skipped at planning: in neither arm
        _send(s, m7, "due", T0)  # not done yet: in neither arm
        _send(s, f["m3"], "control", T0 + DAY)
        _send(s, m6, "control", T0)

    db.run(sends)
    return {**f, "m4": m4, "m6": m6}


def _interval(t: list[float], c: list[float]) -> tuple[float, float, float]:
    """Difference of means with a 95 % normal interval, unpooled sample variances: written out by hand."""
    def mean(x: list[float]) -> float:
        return sum(x) / len(x)

    def var(x: list[float]) -> float:
        return sum((v - mean(x)) ** 2 for v in x) / (len(x) - 1)

    d = mean(t) - mean(c)
    se = math.sqrt(var(t) / len(t) + var(c) / len(c))
    return d, d - Z95 * se, d + Z95 * se


def test_journey_figures_by_hand(engine: Engine) -> None:
    _welcome_fixture()
    rows = {r["journey"]: r for r in db.run(journeys.journey_rows, readonly=True)}
    assert set(rows) >= {"welcome", "birthday", "after_purchase"}
    w = rows["welcome"]
    # Treatment: m1 (sent; bought ¥100 + ¥50 within 7 days), m2 (failed; nothing), m4 (skipped; nothing).
    # Control: m3 (bought ¥30 within 7 days), m6 (bought only 8 days later).
    assert (w["treatment"], w["control"], w["reached"], w["state"]) == (3, 2, 1, "running")
    assert (w["conversion_treatment"], w["conversion_control"]) == (round(1 / 3, 4), 0.5)
    d, low, high = _interval([1, 0, 0], [1, 0])
    assert (w["uplift"], w["uplift_low"], w["uplift_high"]) == (round(d, 4), round(low, 4), round(high, 4))
    assert (w["revenue_per_member_treatment_fen"], w["revenue_per_member_control_fen"]) == (5000, 1500)
    d, low, high = _interval([15000, 0, 0], [3000, 0])
    assert (w["revenue_uplift_low_fen"], w["revenue_uplift_high_fen"]) == (round(low), round(high))
    # m1 redeemed the ¥10 coupon a day after the send.
    assert (w["redemptions"], w["coupon_cost_fen"]) == (1, 1000)
    # A journey with no sends: empty arms, no interval.
    b = rows["birthday"]
    assert (b["treatment"], b["control"], b["conversion_treatment"], b["uplift"], b["uplift_low"]) == (
        0, 0, None, None, None)


def test_pause_resume_and_broadcast_rows(engine: Engine) -> None:
    _fixture()
    db.run(journeys.set_paused, "welcome", True, actor="staff:t")
    later = utcnow() + timedelta(days=2)
    draft = journeys.Draft("SPRING", {"tier": "normal"}, "春季上新", "Spring arrivals", later)
    db.run(journeys.create_broadcast, draft, actor="staff:t")
    rows = {r["journey"]: r for r in db.run(journeys.journey_rows, readonly=True)}
    assert rows["welcome"]["state"] == "paused"
    assert rows["broadcast:SPRING"]["state"] == "scheduled" and rows["broadcast:SPRING"]["kind"] == "broadcast"
    db.run(journeys.set_paused, "welcome", False, actor="staff:t")
    assert not db.run(outreach.paused, "welcome")
    err = None
    try:
        db.run(journeys.create_broadcast, draft, actor="staff:t")
    except Exception as exc:  # noqa: BLE001 - the error is inspected
        err = exc
    assert getattr(err, "params", {}).get("field") == "code"


def test_a_drafts_preview_counts_the_audience_and_writes_nothing(engine: Engine) -> None:
    f = _fixture()
    extra = [join(T0, store_code="RA1") for _ in range(17)]
    db.run(lambda s: s.execute(update(Member).where(Member.id == extra[0]).values(marketing_opt_in=False)))
    store_a = [f["m1"], f["m2"], *extra]
    later = utcnow().replace(hour=4, minute=0) + timedelta(days=2)  # 12:00 in Shanghai: no quiet hours
    draft = journeys.Draft("RA1DAY", {"store_id": f["a"]}, "甲店会员日", "Store A day", later)
    before = counts()
    p = db.run(journeys.preview_draft, draft, actor="staff:t")
    assert counts() == before
    assert db.run(lambda s: s.execute(select(func.count()).select_from(Broadcast)).scalar(), readonly=True) == 0
    name = "broadcast:RA1DAY"
    consenting = [m for m in store_a if m != extra[0]]
    control = [m for m in consenting if rules.in_control(m, name, 10.0)]
    assert p["audience"] == len(store_a) == 19
    assert p["control"] == len(control)
    assert p["skips"].get("opted_out") == 1
    assert p["message_zh"] == "甲店会员日" and p["message_en"] == "Store A day"
    # Saved, the broadcast previews the same numbers.
    db.run(journeys.create_broadcast, draft, actor="staff:t")
    saved = db.run(journeys.preview_journey, name, later, readonly=True)
    assert (saved["audience"], saved["control"]) == (p["audience"], p["control"])
