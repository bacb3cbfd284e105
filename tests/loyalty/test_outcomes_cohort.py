"""A journey's report for a date range and a store equals a brute-force count, frozen or live, on both databases.

A seeded random programme (two stores, members in both arms with one or two
sends spread over a month, orders and redemptions around them) is frozen part
way; for many cohorts (dates, a store, both) the report, from frozen rows plus
open windows and from the orders alone, must equal the same figures counted
in Python from the rows themselves.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.coupons import service as coupons
from loyalty.outreach import outcomes
from loyalty.outreach.models import OutreachSend
from loyalty.outreach.report import Cohort, journey_report
from loyalty.outreach.settings import OutreachSettings
from tests.loyalty.corekit import T0, buy, campaign, join

DAY = timedelta(days=1)
CFG = OutreachSettings(attribution_days=7)
NOW = T0 + 30 * DAY


def _programme(seed: int = 11) -> dict[str, Any]:
    rnd = random.Random(seed)

    def stores(s: Any) -> dict[str, int]:
        rows = [Store(code=c, name_zh=c, name_en=c, city="上海", active=True) for c in ("CA", "CB")]
        s.add_all(rows)
        s.flush()
        return {r.code: r.id for r in rows}

    store_ids = db.run(stores)
    campaign("CH10", discount_fen=1000, per_member_limit=9, valid_days=60)
    sends: list[tuple[int, str, str, datetime]] = []
    orders: list[tuple[int, datetime, int]] = []
    used: list[tuple[int, datetime]] = []
    home: dict[int, int] = {}
    n = 0
    members = []

    def send(m: int, arm: str, step: str, at: datetime) -> None:
        status = "control" if arm == "control" else rnd.choice(("sent", "sent", "failed"))
        db.run(lambda s: s.add(OutreachSend(
            idem_key=f"{m}:welcome:{step}:join", member_id=m, journey="welcome", step=step, occasion="join",
            kind="marketing", arm=arm, status=status, facts={}, planned_at=at, due_at=at, done_at=at)))
        sends.append((m, arm, status, at))

    for i in range(24):
        code = "CA" if i % 2 else "CB"
        m = join(T0 - 40 * DAY, store_code=code)
        home[m] = store_ids[code]
        arm = "control" if i % 4 == 0 else "treatment"
        members.append((m, arm, code))
        first = T0 + timedelta(hours=rnd.randrange(0, 24 * 12))
        send(m, arm, "day0", first)
        for _ in range(rnd.randrange(0, 5)):
            n += 1
            placed = first + timedelta(hours=rnd.randrange(-24 * 3, 24 * 26))
            fen = rnd.randrange(10, 200) * 100
            buy(m, f"{fen // 100}.00", placed, ext=f"CH-{n}")
            orders.append((m, placed, fen))
            if fen >= 10000 and rnd.random() < 0.5:
                c = db.run(coupons.claim, m, "CH10", key=f"ch{n}", now=placed - DAY)
                db.run(coupons.redeem, c.coupon.code, order_amount_fen=fen, order_ref=f"CH-{n}", store_code=code,
                       now=placed)
                used.append((m, placed))
    # Every first window closed by this freeze; then half the members get a newer send, some of whose
    # windows close by the next freeze (their rows replaced) and some not (counted live, old rows taken out).
    db.run(outcomes.freeze_outcomes, T0 + 20 * DAY, CFG)
    for m, arm, _ in members[::2]:
        send(m, arm, "day3", T0 + timedelta(hours=rnd.randrange(24 * 21, 24 * 26)))
    return {"stores": store_ids, "sends": sends, "orders": orders, "used": used, "home": home}


def _counted(p: dict[str, Any], cohort: Cohort) -> dict[str, tuple[int, ...]]:
    """Per arm: members, converted, revenue, redemptions, coupon cost, reached, counted from the rows."""
    latest: dict[tuple[int, str], datetime] = {}
    for m, arm, _, at in p["sends"]:
        latest[m, arm] = max(at, latest.get((m, arm), at))

    def inside(at: datetime) -> bool:
        return (cohort.start is None or at >= cohort.start) and (cohort.end is None or at < cohort.end)

    def mine(m: int) -> bool:
        return cohort.store_id is None or p["home"][m] == cohort.store_id

    out = {}
    for arm in ("treatment", "control"):
        starts = {m: at for (m, a), at in latest.items() if a == arm and inside(at) and mine(m)}
        spent = {m: sum(fen for o, placed, fen in p["orders"] if o == m and at <= placed < at + 7 * DAY)
                 for m, at in starts.items()}
        bought = {m: any(o == m and at <= placed < at + 7 * DAY for o, placed, _ in p["orders"])
                  for m, at in starts.items()}
        redeemed = sum(1 for m, at in starts.items() for u, when in p["used"] if u == m and at <= when < at + 7 * DAY)
        reached = sum(1 for m, a, status, at in p["sends"] if a == arm and status == "sent" and inside(at) and mine(m))
        out[arm] = (len(starts), sum(bought.values()), sum(spent.values()), redeemed, redeemed * 1000,
                    reached if arm == "treatment" else 0)
    return out


def _reported(cohort: Cohort, live_only: bool) -> dict[str, tuple[int, ...]]:
    r = db.run(journey_report, "welcome", CFG, live_only=live_only, cohort=cohort, readonly=True)
    return {name: (a.members, round(a.conversion * a.members), round(a.revenue_per_member_fen * a.members),
                   a.redemptions, a.coupon_cost_fen, a.reached)
            for name, a in (("treatment", r.treatment), ("control", r.control))}


def test_a_cohorts_report_equals_the_rows_counted_by_hand(engine: Engine) -> None:
    p = _programme()
    db.run(outcomes.freeze_outcomes, NOW, CFG)
    a, b = p["stores"]["CA"], p["stores"]["CB"]
    cohorts = [Cohort(), Cohort(store_id=a), Cohort(store_id=b), Cohort(T0, T0 + 10 * DAY),
               Cohort(T0 + 10 * DAY, T0 + 40 * DAY), Cohort(T0 + 5 * DAY, T0 + 15 * DAY, a),
               Cohort(T0 + 18 * DAY, None, b), Cohort(None, T0 + 3 * DAY)]
    nonempty = 0
    for cohort in cohorts:
        expected = _counted(p, cohort)
        assert _reported(cohort, live_only=False) == expected, cohort
        assert _reported(cohort, live_only=True) == expected, cohort
        nonempty += expected["treatment"][0] > 0 and expected["treatment"][1] > 0
    assert nonempty >= 5  # most cohorts hold members who bought: the comparison is not between zeros
