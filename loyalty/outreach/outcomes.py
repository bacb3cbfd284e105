"""Journey outcomes frozen once their attribution window has closed, so the report sums rows instead of orders.

The report (loyalty/outreach/report.py) attributes to a member, once per arm
of a journey, their orders and coupon redemptions within N days of their
latest send (or control moment). Once that window has closed the figures
cannot change, except when

- the member gets a newer send of the journey: the window moves to it. The
  report counts them live from the newer send while its window is open; this
  job replaces their row once it has closed;
- an order is posted late, placed inside a frozen window (a till that was
  offline): this job recomputes the rows such orders touch, from the orders
  posted since its previous run.

Redemptions are stamped with the time they happen, so none arrives late.
Orders and sends are never deleted (a closed account keeps them, linked to
the anonymous member id), so a closed account's rows stay too: they say no
more than the orders they sum.

:func:`freeze_outcomes` runs in every planning round of the outreach
scheduler (bot/outreach.py) and as ``python -m loyalty journey freeze``. It is
set-based and idempotent: one row per journey, member, arm and window length,
written with an insert that leaves a row alone unless its start is newer, so
two schedulers running it at once write each row once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, select, text, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.db import plus_days
from loyalty.orders.models import Order
from loyalty.outreach.models import OutcomeFreeze, OutreachSend, SendOutcome
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings

# Sends written or orders posted a little before the previous run but committed after it: looked at again.
SLACK = timedelta(hours=1)
# Rows written by one freeze beyond which the table's statistics are refreshed at once (a first freeze).
BIG = 10_000

ARM = case((OutreachSend.status == "control", "control"), else_="treatment")
# The sends the report counts: done (or, for the control arm, due), not skipped at planning.
COUNTED = (OutreachSend.reason.is_distinct_from("opted_out"), OutreachSend.reason.is_distinct_from("closed"),
           OutreachSend.done_at.is_not(None), OutreachSend.status != "due")


@dataclass(frozen=True)
class Freeze:
    frozen: int  # rows written (a member's first closed window, or a newer one replacing theirs)
    refreshed: int  # rows recomputed for orders posted late into their window
    frozen_until: datetime


def frozen_until(s: Session, days: int) -> datetime | None:
    """When the outcomes of ``days``-day windows were last frozen (none: never, the report is all live)."""
    return s.execute(select(OutcomeFreeze.frozen_until).where(OutcomeFreeze.window_days == days)).scalar()


def latest_starts(journeys: Sequence[str] | None, after: datetime | None) -> Any:
    """Each member's latest counted send of each of ``journeys`` (None: every journey) per arm, among the
    sends done after ``after``: (journey, member_id, arm, start), a query to group on."""
    q = (select(OutreachSend.journey.label("journey"), OutreachSend.member_id.label("member_id"),
                ARM.label("arm"), func.max(OutreachSend.done_at).label("start"))
         .where(*COUNTED).group_by(OutreachSend.journey, OutreachSend.member_id, ARM))
    if journeys is not None:
        q = q.where(OutreachSend.journey.in_(journeys))
    if after is not None:
        q = q.where(OutreachSend.done_at > after)
    return q


def _insert(s: Session) -> Any:
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


def _freeze_closed(s: Session, days: int, after: datetime | None, at: datetime) -> int:
    """Rows for every (journey, member, arm) whose latest window closed by ``at`` and is not frozen yet."""
    starts = latest_starts(None, after).having(func.max(OutreachSend.done_at) <= at - timedelta(days=days)).subquery()
    same = and_(SendOutcome.journey == starts.c.journey, SendOutcome.member_id == starts.c.member_id,
                SendOutcome.arm == starts.c.arm, SendOutcome.window_days == days)
    # A subquery named twice rather than a WITH: SQLAlchemy 1.4 orders SQLite's positional parameters of
    # an INSERT … WITH … SELECT wrongly, and Python's sqlite3 counts no rows for a statement starting with WITH.
    todo_q = (select(starts).outerjoin(SendOutcome, and_(same, SendOutcome.start_at == starts.c.start))
              .where(SendOutcome.id.is_(None)))
    todo = todo_q.subquery("todo")
    key = (todo.c.journey, todo.c.member_id, todo.c.arm, todo.c.start)
    end = plus_days(s, todo.c.start, days)
    spend = (select(*key, func.count(Order.id).label("orders"), func.coalesce(func.sum(Order.amount_fen), 0)
                    .label("fen"))
             .select_from(todo)
             .outerjoin(Order, and_(Order.member_id == todo.c.member_id, Order.kind == "order",
                                    Order.placed_at >= todo.c.start, Order.placed_at < end))
             .group_by(*key).subquery())
    todo2 = todo_q.subquery("todo2")
    used = (select(todo2.c.journey, todo2.c.member_id, todo2.c.arm, func.count(Coupon.id).label("n"),
                   func.sum(CouponCampaign.discount_fen).label("cost"))
            .select_from(todo2)
            .join(Coupon, and_(Coupon.member_id == todo2.c.member_id, Coupon.status == "redeemed",
                               Coupon.redeemed_at >= todo2.c.start,
                               Coupon.redeemed_at < plus_days(s, todo2.c.start, days)))
            .join(CouponCampaign, CouponCampaign.id == Coupon.campaign_id)
            .group_by(todo2.c.journey, todo2.c.member_id, todo2.c.arm).subquery())
    rows = (select(spend.c.journey, spend.c.member_id, spend.c.arm, literal(days), spend.c.start, spend.c.orders,
                   spend.c.fen, func.coalesce(used.c.n, 0), func.coalesce(used.c.cost, 0),
                   literal(at, SendOutcome.frozen_at.type))
            .select_from(spend)
            .outerjoin(used, and_(used.c.journey == spend.c.journey, used.c.member_id == spend.c.member_id,
                                  used.c.arm == spend.c.arm))
            .where(true()))  # SQLite reads an ON right before ON CONFLICT as a join's unless a WHERE comes between
    cols = ["journey", "member_id", "arm", "window_days", "start_at", "orders", "revenue_fen", "redemptions",
            "coupon_cost_fen", "frozen_at"]
    ins = _insert(s)(SendOutcome).from_select(cols, rows)
    # A newer window replaces the member's row; the same one (another scheduler got there first) is left alone.
    ins = ins.on_conflict_do_update(
        index_elements=["journey", "member_id", "arm", "window_days"],
        set_={c: ins.excluded[c] for c in cols[4:]}, where=ins.excluded.start_at > SendOutcome.start_at)
    return s.execute(ins).rowcount or 0


def _refresh_late(s: Session, days: int, since: datetime, at: datetime) -> int:
    """Recompute the rows whose window holds an order posted since ``since`` (placed earlier than posted)."""
    end = plus_days(s, SendOutcome.start_at, days)
    in_window = and_(Order.member_id == SendOutcome.member_id, Order.kind == "order",
                     Order.placed_at >= SendOutcome.start_at, Order.placed_at < end)
    late = select(Order.id).where(in_window, Order.created_at >= since).exists()
    posted = select(Order.member_id).where(Order.created_at >= since, Order.kind == "order",
                                           Order.member_id.is_not(None))
    orders = select(func.count(Order.id)).where(in_window).scalar_subquery()
    fen = select(func.coalesce(func.sum(Order.amount_fen), 0)).where(in_window).scalar_subquery()
    # The members who posted lately first (a few), then their rows whose window holds such an order.
    res = s.execute(update(SendOutcome).where(SendOutcome.member_id.in_(posted), SendOutcome.window_days == days, late)
                    .values(orders=orders, revenue_fen=fen, frozen_at=at)
                    .execution_options(synchronize_session=False))
    return res.rowcount or 0


def freeze_outcomes(s: Session, now: datetime | None = None, cfg: OutreachSettings | None = None, *,
                    full: bool = False) -> Freeze:
    """Freeze the outcomes of the attribution windows that closed by ``now``, once each.

    Looks at the sends done since the previous run's windows closed (``full``: at every send, for sends
    recorded with a time long past), and at the orders posted since the previous run.
    """
    cfg = cfg or outreach_settings()
    at, days = now_or(now), cfg.attribution_days
    before = frozen_until(s, days)
    refreshed = 0
    if before is not None:
        refreshed = _refresh_late(s, days, before - SLACK, at)
    after = None if before is None or full else before - timedelta(days=days) - SLACK
    frozen = _freeze_closed(s, days, after, at)
    if frozen >= BIG and s.get_bind().dialect.name == "postgresql":
        # Until autovacuum gets to it PostgreSQL takes the table for as small as before, and plans the report's
        # sums over it for a handful of rows (a sort spilled to disk at 50,000 members).
        s.execute(text("ANALYZE send_outcomes"))
    ins = _insert(s)(OutcomeFreeze).values(window_days=days, frozen_until=at)
    s.execute(ins.on_conflict_do_update(index_elements=["window_days"], set_={"frozen_until": at},
                                        where=ins.excluded.frozen_until > OutcomeFreeze.frozen_until))
    return Freeze(frozen, refreshed, max(at, before) if before else at)
