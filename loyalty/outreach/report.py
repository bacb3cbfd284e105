"""What a journey did: treatment against the holdout, with 95 % confidence intervals.

Attribution: a member's orders within N days (default 7) of the send, or of
the moment a control member would have been sent. The arms are compared as
assigned (intent to treat): a treatment member the rules skipped at send time
still counts, so the difference measures the journey as it runs.

A member counts once per arm, from their latest send of the journey (a
journey of two steps attributes from the second). The database sums each
member's orders and redemptions inside the window: two aggregate queries a
journey, whatever the number of members and orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.db import plus_days, without_jit
from loyalty.orders.models import Order
from loyalty.outreach.models import OutreachSend
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings

Z95 = 1.959963984540054


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


def _arms(s: Session, journey: str, days: int) -> dict[str, Arm]:
    """Both arms of a journey in two aggregate queries: each member's window starts at their latest
    send (or control moment); their orders and redemptions inside it are summed by the database."""
    arm = case((OutreachSend.status == "control", "control"), else_="treatment").label("arm")
    starts = (select(OutreachSend.member_id.label("member_id"), arm, func.max(OutreachSend.done_at).label("start"),
                     func.sum(case((OutreachSend.status == "sent", 1), else_=0)).label("sent"))
              .where(OutreachSend.journey == journey, OutreachSend.reason.is_distinct_from("opted_out"),
                     OutreachSend.reason.is_distinct_from("closed"), OutreachSend.done_at.is_not(None),
                     OutreachSend.status != "due")
              .group_by(OutreachSend.member_id, arm).subquery())
    end = plus_days(s, starts.c.start, days)
    in_window = and_(Order.member_id == starts.c.member_id, Order.kind == "order",
                     Order.placed_at >= starts.c.start, Order.placed_at < end)
    spend = (select(starts.c.arm, starts.c.sent, func.count(Order.id).label("orders"),
                    func.coalesce(func.sum(Order.amount_fen), 0).label("fen"))
             .select_from(starts).outerjoin(Order, in_window)
             .group_by(starts.c.member_id, starts.c.arm, starts.c.sent).subquery())
    figures = {a: (int(n), int(sent or 0), int(conv or 0), int(fen or 0), int(sq or 0))
               for a, n, sent, conv, fen, sq in s.execute(
                   select(spend.c.arm, func.count(), func.sum(spend.c.sent),
                          func.sum(case((spend.c.orders > 0, 1), else_=0)), func.sum(spend.c.fen),
                          func.sum(spend.c.fen * spend.c.fen)).group_by(spend.c.arm))}
    used = {a: (int(k), int(cost or 0)) for a, k, cost in s.execute(
        select(starts.c.arm, func.count(Coupon.id), func.sum(CouponCampaign.discount_fen))
        .select_from(starts)
        .join(Coupon, and_(Coupon.member_id == starts.c.member_id, Coupon.status == "redeemed",
                           Coupon.redeemed_at >= starts.c.start, Coupon.redeemed_at < end))
        .join(CouponCampaign, CouponCampaign.id == Coupon.campaign_id).group_by(starts.c.arm))}
    out = {}
    for a in ("treatment", "control"):
        n, sent, conv, fen, squares = figures.get(a, (0, 0, 0, 0, 0))
        redemptions, cost = used.get(a, (0, 0))
        out[a] = Arm(n, sent, conv / n if n else 0.0, fen / n if n else 0.0, redemptions, cost,
                     _variance(n, conv, conv), _variance(n, fen, squares))
    return out


def journey_report(s: Session, journey: str, cfg: OutreachSettings | None = None) -> Report:
    """Members reached, conversion, revenue per member, coupon redemptions and cost, by arm, with the uplift."""
    cfg = cfg or outreach_settings()
    without_jit(s)
    arms = _arms(s, journey, cfg.attribution_days)
    t, c = arms["treatment"], arms["control"]
    return Report(journey, t, c,
                  _diff(t.conversion, t._conv_var, t.members, c.conversion, c._conv_var, c.members),
                  _diff(t.revenue_per_member_fen, t._rev_var, t.members, c.revenue_per_member_fen, c._rev_var,
                        c.members))
