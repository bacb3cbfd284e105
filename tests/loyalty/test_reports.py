"""Dashboard figures against a small fixture computed by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.coupons import service as coupons
from loyalty.handoff.models import Handoff
from loyalty.members.models import Member
from loyalty.reports import service as reports
from loyalty.reports.service import Scope
from tests.loyalty.corekit import T0, buy, join

DAY = timedelta(days=1)


def _stores() -> tuple[int, int]:
    def add(s: Any) -> tuple[int, int]:
        a = Store(code="RA1", name_zh="甲店", name_en="Store A", city="上海", active=True)
        b = Store(code="RB2", name_zh="乙店", name_en="Store B", city="上海", active=True)
        s.add_all([a, b])
        s.flush()
        return a.id, b.id

    return db.run(add)


def _fixture() -> dict[str, int]:
    a, b = _stores()
    m1 = join(T0, store_code="RA1", channel="wechat", external_id="o-1")
    m2 = join(T0 + DAY, store_code="RA1", channel="webchat", external_id="v-2")
    m3 = join(T0 + DAY, store_code="RB2", channel="wechat", external_id="o-3")
    buy(m1, "100.00", T0 + DAY, store_code="RA1")
    buy(m1, "50.00", T0 + 2 * DAY, store_code="RA1")
    buy(m3, "30.00", T0 + 2 * DAY, store_code="RB2")
    return {"a": a, "b": b, "m1": m1, "m2": m2, "m3": m3}


def test_figures_by_hand(engine: Engine) -> None:
    f = _fixture()
    whole = Scope(T0 - DAY, T0 + 10 * DAY)
    store_a = Scope(T0 - DAY, T0 + 10 * DAY, store_id=f["a"])

    def figures(sc: Scope) -> dict[str, Any]:
        return db.run(reports.dashboard, sc, T0 + 3 * DAY, readonly=True)

    every, only_a = figures(whole), figures(store_a)
    day0, day1 = T0.date().isoformat(), (T0 + DAY).date().isoformat()
    assert every["new_members"] == [
        {"day": day0, "store": "RA1", "channel": "wechat", "members": 1},
        {"day": day1, "store": "RA1", "channel": "webchat", "members": 1},
        {"day": day1, "store": "RB2", "channel": "wechat", "members": 1},
    ]
    assert [r["store"] for r in only_a["new_members"]] == ["RA1", "RA1"]
    assert figures(Scope(T0 - DAY, T0 + 10 * DAY, channel="wechat"))["new_members"][1]["store"] == "RB2"
    # m1 and m3 bought: 2 active members; only m1 at store A.
    assert every["active_members"] == 2 and only_a["active_members"] == 1
    # All three are of the first tier: 3 orders, 2 buyers, (10000 + 5000 + 3000) / 3 fen.
    (tier,) = every["sales_by_tier"]
    assert (tier["orders"], tier["buyers"], tier["aov_fen"], tier["frequency"]) == (3, 2, 6000, 1.5)
    # m1 bought again a day after the first order, m3 did not: 1 of 2 buyers within 30 and 90 days.
    assert (tier["repurchase_30"], tier["repurchase_90"]) == (0.5, 0.5)
    (tier_a,) = only_a["sales_by_tier"]
    assert (tier_a["orders"], tier_a["aov_fen"]) == (2, 7500)


def test_repurchase_windows_by_hand(engine: Engine) -> None:
    f = _fixture()  # m1 buys on days 1 and 2, m3 on day 2
    buy(f["m3"], "10.00", T0 + 62 * DAY, store_code="RB2")  # 60 days after m3's first: within 90, not 30
    buy(f["m2"], "10.00", T0 + 5 * DAY, store_code="RA1")  # m2's only order
    (tier,) = db.run(reports.sales_by_tier, Scope(T0 - DAY, T0 + 10 * DAY), readonly=True)
    assert tier["buyers"] == 3
    assert (tier["repurchase_30"], tier["repurchase_90"]) == (round(1 / 3, 4), round(2 / 3, 4))


def test_coupon_funnel_by_hand(engine: Engine) -> None:
    f = _fixture()
    db.run(coupons.create_campaign, code="RPT10", name_zh="满100减10", name_en="10 off 100", kind="threshold",
           threshold_fen=10000, discount_fen=1000, valid_days=30)
    c1 = db.run(coupons.claim, f["m1"], "RPT10", key="k1", now=T0 + DAY)
    db.run(coupons.claim, f["m3"], "RPT10", key="k3", now=T0 + DAY)
    buy(f["m1"], "200.00", T0 + 2 * DAY, store_code="RA1", ext="ORD-C1")
    db.run(coupons.redeem, c1.coupon.code, order_amount_fen=20000, order_ref="ORD-C1", store_code="RA1",
           now=T0 + 2 * DAY)
    whole = db.run(reports.coupons, Scope(T0 - DAY, T0 + 10 * DAY), readonly=True)
    assert whole == [{"campaign": "RPT10", "issued_total": 2, "claimed": 2, "redeemed": 1, "redemption_rate": 0.5,
                      "revenue_fen": 20000, "discount_cost_fen": 1000}]
    only_b = db.run(reports.coupons, Scope(T0 - DAY, T0 + 10 * DAY, store_id=f["b"]), readonly=True)
    assert only_b[0]["claimed"] == 1 and only_b[0]["redeemed"] == 0


def test_bot_figures_by_hand(engine: Engine) -> None:
    f = _fixture()

    def handoffs(s: Any) -> None:
        for i, (reason, wait, rating, member) in enumerate(
                [("request", 60, 5, f["m1"]), ("complaint", 120, 3, f["m1"]), ("request", 600, None, f["m3"]),
                 ("fallback", None, None, None)]):
            s.add(Handoff(sender_id=f"s{i}", channel="webchat", member_id=member, reason=reason, priority=0,
                          language="zh", status="closed" if wait else "queued", created_at=T0,
                          taken_at=T0 + timedelta(seconds=wait) if wait else None, rating=rating))

    db.run(handoffs)
    b = db.run(reports.bot, Scope(T0 - DAY, T0 + DAY), readonly=True)
    assert b["handoffs"] == 4 and b["by_reason"] == {"complaint": 1, "fallback": 1, "request": 2}
    # Waits 60, 120, 600: nearest-rank p50 = 120, p90 = 600.
    assert (b["wait_p50_s"], b["wait_p90_s"]) == (120, 600)
    assert (b["rated"], b["satisfaction"]) == (2, 4.0)
    a = db.run(reports.bot, Scope(T0 - DAY, T0 + DAY, store_id=f["a"]), readonly=True)
    assert a["handoffs"] == 2 and a["wait_p90_s"] == 120


def test_points_by_hand(engine: Engine) -> None:
    f = _fixture()
    p = db.run(reports.points, Scope(T0 - DAY, T0 + 10 * DAY), T0 + 3 * DAY, readonly=True)
    earned = db.run(lambda s: s.execute(select(Member.points_balance).where(
        Member.id.in_([f["m1"], f["m2"], f["m3"]]))).scalars().all(), readonly=True)
    # Nothing spent or expired: the liability is every balance; no history, so no breakage estimate.
    assert p["issued"] == sum(earned) == p["liability"]
    assert (p["spent"], p["expired"], p["expected_breakage"]) == (0, 0, None)



def test_new_members_by_week_by_hand(engine: Engine) -> None:
    _fixture()  # RA1: one on Monday 2 March (wechat), one on Tuesday (webchat); RB2: one on Tuesday (wechat)
    join(T0 + 6 * DAY, store_code="RA1", channel="wechat", external_id="o-sun")  # Sunday: the same week
    join(T0 + 7 * DAY, store_code="RA1", channel="wechat", external_id="o-mon")  # the next Monday
    got = db.run(reports.dashboard, Scope(T0 - DAY, T0 + 10 * DAY), T0 + 10 * DAY, readonly=True)
    week1, week2 = T0.date().isoformat(), (T0 + 7 * DAY).date().isoformat()
    assert got["new_members_by_week"] == [
        {"week": week1, "store": "RA1", "channel": "webchat", "members": 1},
        {"week": week1, "store": "RA1", "channel": "wechat", "members": 2},
        {"week": week1, "store": "RB2", "channel": "wechat", "members": 1},
        {"week": week2, "store": "RA1", "channel": "wechat", "members": 1},
    ]
    assert sum(r["members"] for r in got["new_members"]) == 5
