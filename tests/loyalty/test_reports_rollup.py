"""The pre-aggregated dashboard tables give the live figures, exactly, on SQLite and PostgreSQL.

A seeded random chain (members of several tiers and stores, orders on two
channels over two months, two orders of one member at the same moment, a
return, coupons claimed and redeemed, points earned, spent and expired) is
rolled up, then every figure the tables hold is compared with the live query
for many ranges of whole business days, each store and each channel. The
tables are used only when they are fresh and the range is whole days.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.config import SHANGHAI
from loyalty.coupons import service as coupons
from loyalty.members.models import Member
from loyalty.points import service as points
from loyalty.reports import rollup
from loyalty.reports import service as reports
from loyalty.reports.models import Rollup, SalesCell
from loyalty.reports.service import Scope
from tests.loyalty.corekit import T0, buy, campaign, give_back, join

DAY = timedelta(days=1)
TIERS = ("normal", "silver", "gold")


def _days(first: int, last: int, **kw: Any) -> Scope:
    """The scope the staff app builds for business days T0+first .. T0+last (Shanghai midnights)."""
    d0 = T0.astimezone(SHANGHAI).date()
    return Scope.days(d0 + timedelta(days=first), d0 + timedelta(days=last), **kw)


def _chain(seed: int = 7) -> dict[str, Any]:
    rnd = random.Random(seed)

    def stores(s: Any) -> list[int]:
        rows = [Store(code=f"RU{i}", name_zh=f"店{i}", name_en=f"Store {i}", city="上海", active=True)
                for i in range(3)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]

    store_ids = db.run(stores)
    members = [join(T0 + rnd.randrange(5) * DAY, store_code=f"RU{i % 3}", channel="wechat",
                    external_id=f"o-roll-{i}") for i in range(12)]
    db.run(lambda s: [s.execute(update(Member).where(Member.id == m).values(tier=TIERS[i % 3]))
                      for i, m in enumerate(members)])
    promo = campaign("ROLL10", threshold_fen=5000, discount_fen=1000)
    held = {m: db.run(coupons.claim, m, promo.code, key=f"k{m}", now=T0 + DAY).coupon.code for m in members[:8]}
    n = 0
    for m in members:
        at = T0 + timedelta(hours=rnd.randrange(6, 30))
        for _ in range(rnd.randrange(1, 9)):
            # Gaps from an hour to 45 days, placed at any hour (business days start at 16:00 UTC).
            at += timedelta(hours=rnd.choice((1, 5, 20, 30, 24 * 3, 24 * 20, 24 * 45)), minutes=rnd.randrange(60))
            n += 1
            ext = f"ROLL-{n}"
            buy(m, f"{rnd.randrange(20, 300)}.00", at, ext=ext, store_code=f"RU{rnd.randrange(3)}",
                channel=rnd.choice(("pos", "pos", "online")))
            if m in held and T0 + 2 * DAY <= at < T0 + 30 * DAY and rnd.random() < 0.6:
                db.run(coupons.redeem, held.pop(m), order_amount_fen=30000, order_ref=ext, store_code="RU0", now=at)
    # Two orders of one member at the same moment (a split ticket) and a return.
    tie = T0 + 9 * DAY + timedelta(hours=3)
    buy(members[0], "50.00", tie, ext="ROLL-TIE-1", store_code="RU0")
    buy(members[0], "70.00", tie, ext="ROLL-TIE-2", store_code="RU0")
    give_back("ROLL-TIE-2", "70.00", tie + DAY)
    # Points spent, and a year later one member's lots expired by the job; the others' lots are past
    # their date at NOW but not booked yet (the liability must leave them out all the same).
    for m in members[:4]:
        db.run(points.spend, m, 10, reason="test", key=f"roll-spend-{m}", now=T0 + 20 * DAY)
    db.run(points.expire_due_for, members[5], T0 + 420 * DAY)
    return {"stores": store_ids, "members": members}


SCOPES = [(0, 0), (0, 6), (1, 1), (3, 40), (9, 9), (10, 70), (0, 120), (45, 46), (20, 99)]


def _live(s: Any, sc: Scope, now: datetime) -> dict[str, Any]:
    return {"sales": reports.sales_by_tier(s, sc), "points": reports.points(s, sc, now),
            "coupons": reports.coupons(s, sc)}


NOW = T0 + 430 * DAY


def test_rollup_gives_the_live_figures(engine: Engine) -> None:
    chain = _chain()
    now = NOW
    done = db.run(rollup.refresh, now)
    assert done is not None and done.rows > 0
    scopes = [_days(a, b) for a, b in SCOPES]
    scopes += [_days(0, 120, store_id=sid) for sid in chain["stores"]]
    scopes += [_days(a, b, channel=ch) for ch in ("pos", "online") for a, b in SCOPES[:5]]
    checked = 0
    for sc in scopes:
        rolled = db.run(reports.dashboard, sc, now, readonly=True)
        live = db.run(_live, sc, now, readonly=True)
        held = set(rolled["rolled_up"]["figures"])
        assert {"points", "coupons"} <= held and rolled["rolled_up"]["as_of"] == now.isoformat()
        # Stores' sales are live (no cells per store); the rest must come from the cells.
        assert ("sales_by_tier" in held) == (sc.store_id is None)
        assert rolled["sales_by_tier"] == live["sales"], sc
        assert rolled["points"] == live["points"], sc
        assert rolled["coupons"] == live["coupons"], sc
        checked += bool(live["sales"]) and bool(live["coupons"])
    assert checked >= 10  # most ranges hold orders: the comparison is not between empty lists
    # The points compared were not all zeros: spent in the first weeks, expired a year later, some left.
    early = db.run(reports.points, _days(0, 120), now, readonly=True)
    assert early["spent"] == 40 and early["expired"] == 0 and 0 < early["liability"] < early["issued"]
    every = db.run(reports.points, _days(0, 500), now, readonly=True)
    assert every["expired"] > 0 and every["expiry_rate"] is not None


def test_same_moment_orders_count_once_and_not_as_a_repurchase(engine: Engine) -> None:
    a = join(T0, channel="wechat", external_id="o-tie")
    tie = T0 + 2 * DAY
    buy(a, "50.00", tie)
    buy(a, "70.00", tie)
    now = T0 + 10 * DAY
    db.run(rollup.refresh, now)
    sc = _days(0, 5)
    (tier,) = db.run(reports.dashboard, sc, now, readonly=True)["sales_by_tier"]
    assert (tier["orders"], tier["buyers"], tier["repurchase_30"]) == (2, 1, 0.0)
    assert db.run(reports.sales_by_tier, sc, readonly=True) == [tier]


def test_stale_or_part_day_figures_are_live(engine: Engine) -> None:
    a = join(T0, channel="wechat", external_id="o-stale")
    buy(a, "50.00", T0 + DAY)
    db.run(rollup.refresh, T0 + 2 * DAY)
    buy(a, "80.00", T0 + 2 * DAY + timedelta(hours=1))  # after the rebuild
    sc = _days(0, 5)
    soon, late = T0 + 2 * DAY + timedelta(minutes=10), T0 + 3 * DAY
    fresh = db.run(reports.dashboard, sc, soon, readonly=True)
    # Fresh tables: the figure as of the rebuild, and it says so.
    assert fresh["rolled_up"]["as_of"] == (T0 + 2 * DAY).isoformat()
    assert fresh["sales_by_tier"][0]["orders"] == 1
    stale = db.run(reports.dashboard, sc, late, readonly=True)
    assert stale["rolled_up"]["figures"] == [] and stale["rolled_up"]["as_of"] is None
    assert stale["sales_by_tier"][0]["orders"] == 2
    part = Scope(sc.start + timedelta(hours=1), sc.end)
    assert db.run(reports.dashboard, part, soon, readonly=True)["rolled_up"]["figures"] == []


def test_refresh_replaces_the_tables_whole(engine: Engine) -> None:
    a = join(T0, channel="wechat", external_id="o-twice")
    buy(a, "50.00", T0 + DAY)
    first = db.run(rollup.refresh, T0 + 2 * DAY)
    again = db.run(rollup.refresh, T0 + 3 * DAY)
    assert first is not None and again is not None and first.rows == again.rows

    def state(s: Any) -> tuple[int, Any]:
        cells = s.execute(select(SalesCell.orders)).scalars().all()
        return sum(cells), s.execute(select(Rollup.as_of)).scalar()

    assert db.run(state, readonly=True) == (2, T0 + 3 * DAY)  # one order in each part, not four


def test_migrations_0014_and_0017_go_down_and_up(engine: Engine) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    a = join(T0, channel="wechat", external_id="o-migrate")
    buy(a, "50.00", T0 + DAY)
    db.run(rollup.refresh, T0 + 2 * DAY)
    ours = {"report_sales_cells", "report_points_days", "report_coupon_days", "report_rollups", "journey_copies"}
    _downgrade(engine, "0013")
    assert not ours & set(inspect(engine).get_table_names())
    migrate.upgrade(engine)
    assert ours <= set(inspect(engine).get_table_names())
    # Empty again: the dashboard is live until the next rebuild, with the same figure.
    sc = _days(0, 5)
    got = db.run(reports.dashboard, sc, T0 + 2 * DAY, readonly=True)
    assert got["rolled_up"]["figures"] == [] and got["sales_by_tier"][0]["orders"] == 1
