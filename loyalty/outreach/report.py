"""What a journey did: treatment against the holdout, with 95 % confidence intervals.

Attribution: a member's orders within N days (default 7) of the send, or of
the moment a control member would have been sent. The arms are compared as
assigned (intent to treat): a treatment member the rules skipped at send time
still counts, so the difference measures the journey as it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.coupons.models import Coupon, CouponCampaign
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


def _arm(s: Session, rows: list[tuple[int, object]], days: int) -> Arm:
    convs: list[float] = []
    revs: list[float] = []
    redemptions = cost = reached = 0
    # In time order, so each chunk reads only the orders of its own few days, not every order of its members.
    rows = sorted(rows, key=lambda r: r[1])  # type: ignore[arg-type, return-value]
    for i in range(0, len(rows), 500):
        chunk = rows[i:i + 500]
        starts = {mid: at for mid, at in chunk}
        window_start, window_end = chunk[0][1], chunk[-1][1] + timedelta(days=days)  # type: ignore[operator]
        spend: dict[int, int] = {}
        for mid, placed, amount in s.execute(select(Order.member_id, Order.placed_at, Order.amount_fen)
                                             .where(Order.member_id.in_(starts), Order.kind == "order",
                                                    Order.placed_at >= window_start,
                                                    Order.placed_at < window_end)):
            start = starts[mid]
            if start <= placed < start + timedelta(days=days):  # type: ignore[operator]
                spend[mid] = spend.get(mid, 0) + int(amount)
        for mid, at, fen in s.execute(
                select(Coupon.member_id, Coupon.redeemed_at, CouponCampaign.discount_fen)
                .join(CouponCampaign, CouponCampaign.id == Coupon.campaign_id)
                .where(Coupon.member_id.in_(starts), Coupon.status == "redeemed",
                       Coupon.redeemed_at >= window_start, Coupon.redeemed_at < window_end)):
            if at is not None and starts[mid] <= at < starts[mid] + timedelta(days=days):  # type: ignore[operator]
                redemptions += 1
                cost += int(fen)
        for mid in starts:
            convs.append(1.0 if mid in spend else 0.0)
            revs.append(float(spend.get(mid, 0)))
    n = len(convs)
    mean_c = sum(convs) / n if n else 0.0
    mean_r = sum(revs) / n if n else 0.0
    var_c = sum((x - mean_c) ** 2 for x in convs) / (n - 1) if n > 1 else 0.0
    var_r = sum((x - mean_r) ** 2 for x in revs) / (n - 1) if n > 1 else 0.0
    return Arm(n, reached, mean_c, mean_r, redemptions, cost, var_c, var_r)


def journey_report(s: Session, journey: str, cfg: OutreachSettings | None = None) -> Report:
    """Members reached, conversion, revenue per member, coupon redemptions and cost, by arm, with the uplift."""
    cfg = cfg or outreach_settings()
    base = select(OutreachSend.member_id, OutreachSend.done_at, OutreachSend.status).where(
        OutreachSend.journey == journey, OutreachSend.reason.is_distinct_from("opted_out"),
        OutreachSend.reason.is_distinct_from("closed"), OutreachSend.done_at.is_not(None))
    t_rows, c_rows, reached = [], [], 0
    for mid, at, status in s.execute(base):
        if status == "control":
            c_rows.append((mid, at))
        elif status != "due":
            t_rows.append((mid, at))
            reached += status == "sent"
    t, c = _arm(s, t_rows, cfg.attribution_days), _arm(s, c_rows, cfg.attribution_days)
    t = Arm(t.members, reached, t.conversion, t.revenue_per_member_fen, t.redemptions, t.coupon_cost_fen,
            t._conv_var, t._rev_var)
    return Report(journey, t, c,
                  _diff(t.conversion, t._conv_var, t.members, c.conversion, c._conv_var, c.members),
                  _diff(t.revenue_per_member_fen, t._rev_var, t.members, c.revenue_per_member_fen, c._rev_var,
                        c.members))
