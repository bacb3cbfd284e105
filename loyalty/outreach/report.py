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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import String, and_, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.db import plus_days, without_jit
from loyalty.members.models import Member
from loyalty.orders.models import Order
from loyalty.outreach.models import OutreachSend, SendOutcome
from loyalty.outreach.outcomes import COUNTED, frozen_until, latest_starts
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


@dataclass(frozen=True)
class Cohort:
    """Which members a report covers: those whose latest send (or control moment) of the journey falls in
    ``[start, end)``, and of one home store; None in a field: no limit."""

    start: datetime | None = None
    end: datetime | None = None
    store_id: int | None = None

    def members(self, col: Any) -> list[Any]:
        """The store condition on a member id column (none without a store)."""
        if self.store_id is None:
            return []
        return [col.in_(select(Member.id).where(Member.store_id == self.store_id))]

    def times(self, col: Any) -> list[Any]:
        """The date-range condition on a time column."""
        return ([col >= self.start] if self.start else []) + ([col < self.end] if self.end else [])


def _figures(s: Session, journeys: Sequence[str], days: int, after: datetime | None,
             cohort: Cohort = Cohort()) -> dict[tuple[str, str], list[int]]:
    """Per journey and arm: members, converted, revenue, revenue², redemptions, coupon cost and reached,
    for every journey in one statement (the recent orders are read once).

    The members whose latest send (or control moment) came after ``after`` (None: every member) are summed
    live from their orders and redemptions; the others from their frozen outcomes: every frozen row of the
    journey, less the rows of the members counted live (a newer send has replaced their window).
    """
    # PostgreSQL computes the members' starts once for every part; SQLAlchemy 1.4 orders SQLite's positional
    # parameters of a WITH inside a UNION wrongly, so there each part has its own copy.
    pg = s.get_bind().dialect.name == "postgresql"
    every = latest_starts(journeys, after).where(*cohort.members(OutreachSend.member_id))
    dated = cohort.times(func.max(OutreachSend.done_at))
    q = every.having(and_(*dated)) if dated else every
    starts = q.cte("starts") if pg else q.subquery("starts")
    # The live members whatever their date: a frozen row in the range is theirs no more when it is not their latest.
    moved = starts if not dated else every.cte("moved") if pg else every.subquery("moved")
    end = plus_days(s, starts.c.start, days)
    in_window = and_(Order.member_id == starts.c.member_id, Order.kind == "order",
                     Order.placed_at >= starts.c.start, Order.placed_at < end)
    used_in_window = and_(Coupon.member_id == starts.c.member_id, Coupon.status == "redeemed",
                          Coupon.redeemed_at >= starts.c.start, Coupon.redeemed_at < end)
    if after is not None:
        # Implied by start > after, said outright so that PostgreSQL reads only the recent orders and
        # redemptions (by their time's index) instead of hashing them all for the members still open.
        in_window = and_(in_window, Order.placed_at > after)
        used_in_window = and_(used_in_window, Coupon.redeemed_at > after)
    spend = (select(starts.c.journey, starts.c.arm, func.count(Order.id).label("orders"),
                    func.coalesce(func.sum(Order.amount_fen), 0).label("fen"))
             .select_from(starts).outerjoin(Order, in_window)
             .group_by(starts.c.journey, starts.c.member_id, starts.c.arm).subquery())
    no = literal(0)
    parts = [
        select(spend.c.journey, spend.c.arm, func.count(), func.sum(case((spend.c.orders > 0, 1), else_=0)),
               func.sum(spend.c.fen), func.sum(spend.c.fen * spend.c.fen), no, no, no)
        .group_by(spend.c.journey, spend.c.arm),
        select(starts.c.journey, starts.c.arm, no, no, no, no, func.count(Coupon.id),
               func.sum(CouponCampaign.discount_fen), no)
        .select_from(starts).join(Coupon, used_in_window)
        .join(CouponCampaign, CouponCampaign.id == Coupon.campaign_id).group_by(starts.c.journey, starts.c.arm),
        select(OutreachSend.journey, literal("treatment", String), no, no, no, no, no, no, func.count())
        .where(OutreachSend.journey.in_(journeys), OutreachSend.status == "sent", *COUNTED,
               *cohort.members(OutreachSend.member_id), *cohort.times(OutreachSend.done_at))
        .group_by(OutreachSend.journey),
    ]
    if after is not None:
        o = SendOutcome
        sums = (func.count(), func.sum(case((o.orders > 0, 1), else_=0)), func.sum(o.revenue_fen),
                func.sum(o.revenue_fen * o.revenue_fen), func.sum(o.redemptions), func.sum(o.coupon_cost_fen))
        mine = (*cohort.members(o.member_id), *cohort.times(o.start_at))
        parts.append(select(o.journey, o.arm, *sums, no).where(o.journey.in_(journeys), o.window_days == days,
                                                                *mine)
                     .group_by(o.journey, o.arm))
        # Less the rows of the members counted live, found from them through the outcomes' unique key.
        parts.append(select(o.journey, o.arm, *(-x for x in sums), no).select_from(moved)
                     .join(o, and_(o.journey == moved.c.journey, o.member_id == moved.c.member_id,
                                   o.arm == moved.c.arm, o.window_days == days, *mine))
                     .group_by(o.journey, o.arm))
    out = {(j, a): [0] * 7 for j in journeys for a in ARMS}
    for journey, arm, *values in s.execute(union_all(*parts)):
        out[journey, arm] = [x + int(v or 0) for x, v in zip(out[journey, arm], values, strict=True)]
    return out


def _report(journey: str, figures: dict[tuple[str, str], list[int]]) -> Report:
    arms = {}
    for a in ARMS:
        n, conv, fen, squares, redemptions, cost, reached = figures[journey, a]
        arms[a] = Arm(n, reached, conv / n if n else 0.0, fen / n if n else 0.0, redemptions, cost,
                      _variance(n, conv, conv), _variance(n, fen, squares))
    t, c = arms["treatment"], arms["control"]
    return Report(journey, t, c,
                  _diff(t.conversion, t._conv_var, t.members, c.conversion, c._conv_var, c.members),
                  _diff(t.revenue_per_member_fen, t._rev_var, t.members, c.revenue_per_member_fen, c._rev_var,
                        c.members))


def journey_reports(s: Session, journeys: Sequence[str], cfg: OutreachSettings | None = None, *,
                    live_only: bool = False, cohort: Cohort = Cohort()) -> dict[str, Report]:
    """:func:`journey_report` of several journeys at once (one statement)."""
    cfg = cfg or outreach_settings()
    if not journeys:
        return {}
    without_jit(s)
    days = cfg.attribution_days
    # The frozen outcomes of the windows closed by the last freeze, plus the members whose window was open
    # then, live (everyone live before the first freeze, or with ``live_only``).
    until = None if live_only else frozen_until(s, days)
    figures = _figures(s, list(journeys), days, None if until is None else until - timedelta(days=days), cohort)
    return {j: _report(j, figures) for j in journeys}


def journey_report(s: Session, journey: str, cfg: OutreachSettings | None = None, *,
                   live_only: bool = False, cohort: Cohort = Cohort()) -> Report:
    """Members reached, conversion, revenue per member, coupon redemptions and cost, by arm, with the uplift.

    ``live_only``: computed from the orders alone, ignoring the frozen outcomes (the same figures, slower).
    ``cohort``: only the members whose latest send falls in its dates, of its store; reached counts the
    sends made in its dates.
    """
    return journey_reports(s, [journey], cfg, live_only=live_only, cohort=cohort)[journey]
