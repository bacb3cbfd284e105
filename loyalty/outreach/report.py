"""What a journey did: treatment against the holdout, with 95 % confidence intervals.

Attribution: a member's orders within N days (default 7) of the send, or of
the moment a control member would have been sent. The arms are compared as
assigned (intent to treat): a treatment member the rules skipped at send time
still counts, so the difference measures the journey as it runs.

A member counts once per arm, from their latest send of the journey (a
journey of two steps attributes from the second). Windows that had closed
when the outcomes were last frozen (loyalty/outreach/outcomes.py) are summed
from their frozen rows; the members whose window was still open then are
summed live by the database from their orders and redemptions. Before the
first freeze every member is live: the same figures, more slowly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.db import plus_days, without_jit
from loyalty.orders.models import Order
from loyalty.outreach.models import OutreachSend, SendOutcome
from loyalty.outreach.outcomes import ARM, COUNTED, frozen_until, latest_starts
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings

Z95 = 1.959963984540054
ARMS = ("treatment", "control")


@dataclass(frozen=True)
class Arm:
    members: int
    reached: int
    conversion: float
    revenue_per_member_fen: float
    redemptions: int
    coupon_cost_fen: int
    _conv_var: float
    _rev_var: float


@dataclass(frozen=True)
class Difference:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Report:
    journey: str
    treatment: Arm
    control: Arm
    conversion_uplift: Difference
    revenue_uplift_fen: Difference


def _diff(t_mean: float, t_var: float, t_n: int, c_mean: float, c_var: float, c_n: int) -> Difference:
    value = t_mean - c_mean
    if not t_n or not c_n:
        return Difference(value, -math.inf, math.inf)
    se = math.sqrt(t_var / t_n + c_var / c_n)
    return Difference(value, value - Z95 * se, value + Z95 * se)


def _variance(n: int, total: int, squares: int) -> float:
    """The sample variance of ``n`` integers from their sum and sum of squares, exactly, then as a float."""
    return float(Fraction(squares * n - total * total, n * (n - 1))) if n > 1 else 0.0


Figures = tuple[int, int, int, int, int, int]  # members, converted, fen, sum of fen², redemptions, coupon cost


def _live(s: Session, journey: str, days: int, after: datetime | None) -> dict[str, Figures]:
    """Each arm's figures over the members whose latest send (or control moment) came after ``after``
    (None: every member), summed by the database from their orders and redemptions."""
    starts = latest_starts(journey, after).subquery()
    end = plus_days(s, starts.c.start, days)
    in_window = and_(Order.member_id == starts.c.member_id, Order.kind == "order",
                     Order.placed_at >= starts.c.start, Order.placed_at < end)
    used_in_window = and_(Coupon.member_id == starts.c.member_id, Coupon.status == "redeemed",
                          Coupon.redeemed_at >= starts.c.start, Coupon.redeemed_at < end)
    if after is not None:
        # Implied by start > after, said outright so that PostgreSQL reads only the recent orders (by their
        # placed_at index) instead of hashing them all for the few members whose window is open.
        in_window = and_(in_window, Order.placed_at > after)
        used_in_window = and_(used_in_window, Coupon.redeemed_at > after)
    spend = (select(starts.c.arm, func.count(Order.id).label("orders"),
                    func.coalesce(func.sum(Order.amount_fen), 0).label("fen"))
             .select_from(starts).outerjoin(Order, in_window)
             .group_by(starts.c.member_id, starts.c.arm).subquery())
    figures = {a: (int(n), int(conv or 0), int(fen or 0), int(sq or 0))
               for a, n, conv, fen, sq in s.execute(
                   select(spend.c.arm, func.count(), func.sum(case((spend.c.orders > 0, 1), else_=0)),
                          func.sum(spend.c.fen), func.sum(spend.c.fen * spend.c.fen)).group_by(spend.c.arm))}
    used = {a: (int(k), int(cost or 0)) for a, k, cost in s.execute(
        select(starts.c.arm, func.count(Coupon.id), func.sum(CouponCampaign.discount_fen))
        .select_from(starts)
        .join(Coupon, used_in_window)
        .join(CouponCampaign, CouponCampaign.id == Coupon.campaign_id).group_by(starts.c.arm))}
    return {a: figures.get(a, (0, 0, 0, 0)) + used.get(a, (0, 0)) for a in ARMS}


def _frozen(s: Session, journey: str, days: int, after: datetime) -> dict[str, Figures]:
    """Each arm's figures summed over the frozen outcomes, less the members counted live from a newer send."""
    o = SendOutcome
    # A correlated NOT EXISTS (one probe of the member's sends each) rather than an anti-join to the live
    # members: right after a big freeze PostgreSQL's statistics still call the table empty, and it then
    # rescanned the live members once per row (0.8 s instead of 20 ms at 10,000 members).
    newer = (select(OutreachSend.id)
             .where(OutreachSend.member_id == o.member_id, OutreachSend.journey == journey, ARM == o.arm,
                    OutreachSend.done_at > after, *COUNTED).exists())
    rows = s.execute(
        select(o.arm, func.count(), func.sum(case((o.orders > 0, 1), else_=0)), func.sum(o.revenue_fen),
               func.sum(o.revenue_fen * o.revenue_fen), func.sum(o.redemptions), func.sum(o.coupon_cost_fen))
        .where(o.journey == journey, o.window_days == days, ~newer).group_by(o.arm))
    got = {a: tuple(int(v or 0) for v in rest) for a, *rest in rows}
    return {a: got.get(a, (0, 0, 0, 0, 0, 0)) for a in ARMS}  # type: ignore[misc]


def _reached(s: Session, journey: str) -> int:
    return int(s.execute(select(func.count()).select_from(OutreachSend).where(
        OutreachSend.journey == journey, OutreachSend.status == "sent", *COUNTED)).scalar() or 0)


def _arms(s: Session, journey: str, days: int, live_only: bool = False) -> dict[str, Arm]:
    """Both arms of a journey: the frozen outcomes of the windows closed by the last freeze, plus the members
    whose window was open then, live (everyone live before the first freeze, or with ``live_only``)."""
    until = None if live_only else frozen_until(s, days)
    after = None if until is None else until - timedelta(days=days)
    live = _live(s, journey, days, after)
    frozen = _frozen(s, journey, days, after) if after is not None else {a: (0,) * 6 for a in ARMS}
    out, reached = {}, _reached(s, journey)
    for a in ARMS:
        n, conv, fen, squares, redemptions, cost = (x + y for x, y in zip(live[a], frozen[a], strict=True))
        # Only the treatment arm is ever sent a message.
        out[a] = Arm(n, reached if a == "treatment" else 0, conv / n if n else 0.0,
                     fen / n if n else 0.0, redemptions, cost, _variance(n, conv, conv), _variance(n, fen, squares))
    return out


def journey_report(s: Session, journey: str, cfg: OutreachSettings | None = None, *,
                   live_only: bool = False) -> Report:
    """Members reached, conversion, revenue per member, coupon redemptions and cost, by arm, with the uplift.

    ``live_only``: computed from the orders alone, ignoring the frozen outcomes (the same figures, slower).
    """
    cfg = cfg or outreach_settings()
    without_jit(s)
    arms = _arms(s, journey, cfg.attribution_days, live_only)
    t, c = arms["treatment"], arms["control"]
    return Report(journey, t, c,
                  _diff(t.conversion, t._conv_var, t.members, c.conversion, c._conv_var, c.members),
                  _diff(t.revenue_per_member_fen, t._rev_var, t.members, c.revenue_per_member_fen, c._rev_var,
                        c.members))
