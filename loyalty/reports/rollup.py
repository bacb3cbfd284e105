"""The dashboard's pre-aggregated tables: rebuilt by the scheduler, read when fresh, live figures otherwise.

At a chain's size (100,000 members, 2 million orders) the sales figures
(buyers, repurchase) and the points sums cost a pass over millions of rows
per page view. :func:`refresh` rebuilds two small tables from them in one
transaction, a few seconds of the database's time every few minutes
(``REPORTS_REFRESH_SECONDS``, default 600, in the outreach scheduler; or
``python -m loyalty reports refresh``):

- ``report_sales_cells``: per business day, tier and the day of the member's
  previous order (see :class:`~loyalty.reports.models.SalesCell`): any range
  of whole days then sums to the same orders, buyers, amount and repurchase
  as the live query;
- ``report_points_days``: points issued, spent and expired per day and home store.

The dashboard reads them when the range is whole business days (Asia/Shanghai,
as the staff app asks), the scope is one the tables hold (all stores; the
sales also per channel) and the last rebuild is younger than
``REPORTS_MAX_AGE_SECONDS`` (default 1800); it then says as of when. Anything
else is computed live, so a figure is never older than that and always exact
as of the time it states.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.config import env_value
from loyalty.coupons.models import Coupon
from loyalty.members.models import Member
from loyalty.orders.models import Order
from loyalty.points.models import LedgerEntry
from loyalty.reports.models import CouponDay, PointsDay, Rollup, SalesCell
from loyalty.reports.scope import Scope, tier_row

NAME = "dashboard"
# Business days are Asia/Shanghai's: UTC+8 all year (no daylight saving since 1991).
UTC_OFFSET = timedelta(hours=8)
ISSUED_KINDS = ("earn", "referral", "adjust", "gift", "welcome")


@dataclass(frozen=True)
class Settings:
    refresh_seconds: float = 600.0
    max_age_seconds: float = 1800.0


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 10**7:
        raise ValueError("seconds from 0 up")
    return value


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """REPORTS_REFRESH_SECONDS (0: the scheduler does not rebuild) and REPORTS_MAX_AGE_SECONDS."""
    e = os.environ if env is None else env
    d = Settings()
    return Settings(env_value(e, "REPORTS_REFRESH_SECONDS", d.refresh_seconds, _seconds),
                    env_value(e, "REPORTS_MAX_AGE_SECONDS", d.max_age_seconds, _seconds))


def local_day(s: Session, col: Any) -> Any:
    """The business day (YYYY-MM-DD, UTC+8) of a UTC timestamp column, on SQLite and PostgreSQL alike."""
    if s.get_bind().dialect.name == "sqlite":
        return func.date(col, "+8 hours")
    return func.to_char(col + func.make_interval(0, 0, 0, 0, 8), "YYYY-MM-DD")


def whole_days(sc: Scope) -> tuple[str, str] | None:
    """The first and last business day of a scope that starts and ends at business midnights; else None."""
    start, end = (t.astimezone(timezone.utc) + UTC_OFFSET for t in (sc.start, sc.end))
    if start.time() != datetime.min.time() or end.time() != datetime.min.time() or end <= start:
        return None
    return start.date().isoformat(), (end.date() - timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class Refreshed:
    as_of: datetime
    took_ms: int
    rows: int


def _sales_cells(s: Session, part: str) -> Any:
    """INSERT … SELECT of one part's cells: moments, their neighbours by window functions, grouped by day."""
    by_channel = part == "channel"
    keys = [Order.member_id] + ([Order.channel] if by_channel else [])
    moments = (select(*keys, Order.placed_at, func.count(Order.id).label("n"),
                      func.sum(Order.amount_fen).label("fen"))
               .where(Order.kind == "order", Order.member_id.is_not(None))
               .group_by(*keys, Order.placed_at).subquery())
    history = [moments.c.member_id] + ([moments.c.channel] if by_channel else [])
    linked = select(moments, func.lag(moments.c.placed_at).over(partition_by=history,
                                                                order_by=moments.c.placed_at).label("prev_at"),
                    func.lead(moments.c.placed_at).over(partition_by=history,
                                                        order_by=moments.c.placed_at).label("next_at")).subquery()
    channel = linked.c.channel if by_channel else literal("")

    def again(days: int) -> Any:
        return func.sum(case((linked.c.next_at <= db.plus_days(s, linked.c.placed_at, days), 1), else_=0))

    day, prev_day = local_day(s, linked.c.placed_at), local_day(s, linked.c.prev_at)
    q = (select(literal(part), channel, Member.tier, day, prev_day, func.sum(linked.c.n), func.sum(linked.c.fen),
                func.count(), again(30), again(90))
         .select_from(linked).join(Member, Member.id == linked.c.member_id)
         .group_by(*([channel] if by_channel else []), Member.tier, day, prev_day))
    return insert(SalesCell).from_select(["part", "channel", "tier", "day", "prev_day", "orders", "amount_fen",
                                          "moments", "again30", "again90"], q)


def _points_days(s: Session) -> Any:
    kind, delta = LedgerEntry.kind, LedgerEntry.delta
    day, store = local_day(s, LedgerEntry.created_at), func.coalesce(Member.store_id, 0)
    q = (select(day, store,
                func.coalesce(func.sum(case((and_(kind.in_(ISSUED_KINDS), delta > 0), delta), else_=0)), 0),
                func.coalesce(func.sum(case((kind == "spend", -delta), else_=0)), 0),
                func.coalesce(func.sum(case((kind == "expire", -delta), else_=0)), 0))
         .select_from(LedgerEntry).join(Member, Member.id == LedgerEntry.member_id).group_by(day, store))
    return insert(PointsDay).from_select(["day", "store_id", "issued", "spent", "expired"], q)


def _coupon_days(s: Session) -> Any:
    """Claimed and redeemed coupons per claim day, campaign and home store, with the redeeming orders' amount
    (the orders are summed per coupon first: a coupon counts once however many orders share its reference)."""
    revenue = (select(Order.external_id.label("ref"), func.sum(Order.amount_fen).label("fen"))
               .where(Order.kind == "order").group_by(Order.external_id).subquery())
    day, store = local_day(s, Coupon.claimed_at), func.coalesce(Member.store_id, 0)
    redeemed = Coupon.status == "redeemed"
    q = (select(day, Coupon.campaign_id, store, func.count(), func.sum(case((redeemed, 1), else_=0)),
                func.coalesce(func.sum(case((redeemed, revenue.c.fen), else_=0)), 0))
         .select_from(Coupon).join(Member, Member.id == Coupon.member_id)
         .outerjoin(revenue, revenue.c.ref == Coupon.redeemed_ref)
         .group_by(day, Coupon.campaign_id, store))
    return insert(CouponDay).from_select(["day", "campaign_id", "store_id", "claimed", "redeemed", "revenue_fen"], q)


def refresh(s: Session, now: datetime | None = None) -> Refreshed | None:
    """Rebuild every pre-aggregated table in this transaction; None when another process is rebuilding them."""
    at = db.utcnow() if now is None else now
    t0 = time.perf_counter()
    db.add_first(s, Rollup(name=NAME, as_of=datetime(1970, 1, 1, tzinfo=timezone.utc), took_ms=0, rows=0))
    s.flush()
    row = s.execute(select(Rollup).where(Rollup.name == NAME).with_for_update(skip_locked=True)).scalar()
    if row is None:
        return None
    db.without_jit(s)
    s.execute(delete(SalesCell))
    s.execute(delete(PointsDay))
    s.execute(delete(CouponDay))
    for part in ("all", "channel"):
        s.execute(_sales_cells(s, part))
    s.execute(_points_days(s))
    s.execute(_coupon_days(s))
    rows = sum(int(s.execute(select(func.count()).select_from(t)).scalar() or 0)
               for t in (SalesCell, PointsDay, CouponDay))
    took = round((time.perf_counter() - t0) * 1000)
    row.as_of, row.took_ms, row.rows = at, took, rows
    return Refreshed(at, took, rows)


def fresh_as_of(s: Session, now: datetime, cfg: Settings | None = None) -> datetime | None:
    """When the tables were rebuilt, if that is recent enough to show; None means compute live."""
    cfg = cfg or settings()
    as_of = s.execute(select(Rollup.as_of).where(Rollup.name == NAME)).scalar()
    if as_of is None or now - as_of > timedelta(seconds=cfg.max_age_seconds) or as_of > now + timedelta(minutes=5):
        return None
    return as_of


def sales_by_tier(s: Session, sc: Scope) -> list[dict[str, Any]] | None:
    """The sales figures per tier from the cells, or None when this scope is not held (a store, a part day)."""
    days = whole_days(sc)
    if days is None or sc.store_id is not None:
        return None
    first, last = days
    c = SalesCell
    starts = or_(c.prev_day.is_(None), c.prev_day < first)

    def when_first(col: Any) -> Any:
        return func.coalesce(func.sum(case((starts, col), else_=0)), 0)

    q = (select(c.tier, func.sum(c.orders), func.sum(c.amount_fen), when_first(c.moments), when_first(c.again30),
                when_first(c.again90))
         .where(c.part == ("channel" if sc.channel else "all"), c.channel == (sc.channel or ""), c.day >= first,
                c.day <= last)
         .group_by(c.tier).order_by(c.tier))
    return [tier_row(tier, int(n), int(buyers), int(fen), int(r30), int(r90))
            for tier, n, fen, buyers, r30, r90 in s.execute(q)]


def points_sums(s: Session, sc: Scope) -> tuple[int, int, int, int, int] | None:
    """Issued, spent, expired in the scope's days and spent, expired ever; None for a part day.

    The ledger has no channel: like the live figure, a channel filter does not apply to points."""
    days = whole_days(sc)
    if days is None:
        return None
    first, last = days
    inside = and_(PointsDay.day >= first, PointsDay.day <= last)

    def total(expr: Any) -> Any:
        return func.coalesce(func.sum(expr), 0)

    q = select(total(case((inside, PointsDay.issued), else_=0)), total(case((inside, PointsDay.spent), else_=0)),
               total(case((inside, PointsDay.expired), else_=0)), total(PointsDay.spent), total(PointsDay.expired))
    if sc.store_id is not None:
        q = q.where(PointsDay.store_id == sc.store_id)
    got, spent, expired, all_spent, all_expired = (int(x) for x in s.execute(q).one())
    return got, spent, expired, all_spent, all_expired



def coupon_counts(s: Session, sc: Scope) -> dict[int, tuple[int, int, int]] | None:
    """Per campaign id: claimed, redeemed, revenue of the redeeming orders, for coupons claimed in the
    scope's days; None for a part day. Like the live figure, a channel filter does not apply."""
    days = whole_days(sc)
    if days is None:
        return None
    first, last = days
    c = CouponDay
    q = (select(c.campaign_id, func.sum(c.claimed), func.sum(c.redeemed), func.sum(c.revenue_fen))
         .where(c.day >= first, c.day <= last).group_by(c.campaign_id))
    if sc.store_id is not None:
        q = q.where(c.store_id == sc.store_id)
    return {cid: (int(n), int(used), int(fen)) for cid, n, used, fen in s.execute(q)}
