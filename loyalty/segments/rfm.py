"""RFM scores, named segments, lifecycle stages and tags, from plain inputs.

Pure functions: the same inputs and the same ``as_of`` give the same answer
whatever the input order. The job in :mod:`loyalty.segments.job` feeds them
from the database and stores the result.

Scores are quintiles 1..5 (5 best) computed with mid-ranks, so equal values
always get equal scores and a population of one member (or of identical
members) lands in the middle (3) instead of at an arbitrary end.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

# Segment codes, in the order a marketer reads them, with zh / en names.
SEGMENTS: dict[str, tuple[str, str]] = {
    "champions": ("重要价值会员", "Champions"),
    "loyal": ("忠诚会员", "Loyal"),
    "potential": ("潜力会员", "Potential"),
    "new": ("新会员", "New"),
    "need_attention": ("需关注会员", "Need attention"),
    "at_risk": ("流失风险会员", "At risk"),
    "hibernating": ("沉睡会员", "Hibernating"),
    "lost": ("已流失会员", "Lost"),
    "prospect": ("未消费会员", "No purchase yet"),
}
LIFECYCLES: dict[str, tuple[str, str]] = {
    "new": ("新客", "New"),
    "active": ("活跃", "Active"),
    "dormant": ("沉默", "Dormant"),
    "churned": ("流失", "Churned"),
}
DEAL_SEEKER = "deal_seeker"  # most orders use a coupon
FULL_PRICE = "full_price"  # several orders, almost never a coupon
FAVOURITE_PREFIX = "fav:"


@dataclass(frozen=True)
class MemberActivity:
    """What the segmentation needs to know about one member (amounts in fen)."""

    member_id: int
    joined_at: datetime
    orders: int = 0
    spend_fen: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    category_spend: Mapping[str, int] = field(default_factory=dict)
    coupon_orders: int = 0  # orders on which the member redeemed a coupon

    def __post_init__(self) -> None:
        if self.orders < 0 or self.coupon_orders < 0:
            raise ValueError("order counts cannot be negative")
        if self.orders > 0 and self.last_order_at is None:
            raise ValueError(f"member {self.member_id} has orders but no last order time")


@dataclass(frozen=True)
class Rules:
    """Day thresholds and tag cut-offs (see loyalty.config for the environment)."""

    new_days: int = 30  # joined (or first bought) within: new
    active_days: int = 90  # last order within: active
    churn_days: int = 180  # no order for longer: churned (in between: dormant)
    favourite_share: float = 0.3  # a category with this share of spend is a favourite
    max_favourites: int = 2
    deal_share: float = 0.5  # coupon on at least this share of orders: deal seeker
    full_price_share: float = 0.1  # coupon on at most this share...
    full_price_min_orders: int = 3  # ...of at least this many orders: full price

    def __post_init__(self) -> None:
        if self.new_days <= 0:
            raise ValueError("new_days must be positive")
        if not 0 < self.active_days < self.churn_days:
            raise ValueError("need 0 < active_days < churn_days")


@dataclass(frozen=True)
class Profile:
    """A member's scores (0 = no purchase yet), segment, lifecycle stage and tags."""

    member_id: int
    recency: int
    frequency: int
    monetary: int
    segment: str
    lifecycle: str
    tags: tuple[str, ...]


def quintile_scores(values: Sequence[float], higher_is_better: bool = True) -> list[int]:
    """Scores 1..5 by mid-rank percentile; ties share a score; one value scores 3."""
    n = len(values)
    if n == 0:
        return []
    ordered = sorted(values)
    scores = []
    for v in values:
        below = _count_below(ordered, v)
        equal = _count_below(ordered, v, inclusive=True) - below
        p = (below + 0.5 * equal) / n
        if not higher_is_better:
            p = 1.0 - p
        # Rounding first keeps float noise (0.7 * 5 = 3.5000000000000004) off the boundaries.
        scores.append(min(5, max(1, math.ceil(round(5 * p, 9)))))
    return scores


def _count_below(ordered: list[float], v: float, inclusive: bool = False) -> int:
    return bisect.bisect_right(ordered, v) if inclusive else bisect.bisect_left(ordered, v)


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 86_400.0


def segment_of(r: int, f: int, m: int, is_new: bool) -> str:
    """The named segment for RFM scores; every combination maps to exactly one name."""
    if r == 0:
        return "new" if is_new else "prospect"
    if is_new:
        return "new"
    if r >= 4:
        if f >= 4 and m >= 4:
            return "champions"
        return "loyal" if f >= 4 else "potential"
    if r == 3:
        return "loyal" if f >= 4 else "need_attention"
    if f >= 4 or m >= 4:
        return "at_risk"  # used to buy often or much, slipping away
    return "hibernating" if r == 2 else "lost"


def lifecycle_of(a: MemberActivity, as_of: datetime, rules: Rules) -> str:
    """new / active / dormant / churned by days since joining and since the last order."""
    if _days(as_of, a.joined_at) <= rules.new_days:
        return "new"
    last = a.last_order_at or a.joined_at
    idle = _days(as_of, last)
    if idle <= rules.active_days:
        return "active"
    return "dormant" if idle <= rules.churn_days else "churned"


def tags_of(a: MemberActivity, rules: Rules) -> tuple[str, ...]:
    """Favourite categories (by share of spend) and price sensitivity (by coupon use)."""
    tags: list[str] = []
    total = sum(v for v in a.category_spend.values() if v > 0)
    if total > 0:
        ranked = sorted(((v, c) for c, v in a.category_spend.items() if v > 0),
                        key=lambda vc: (-vc[0], vc[1]))
        for value, category in ranked[: rules.max_favourites]:
            if value / total >= rules.favourite_share:
                tags.append(FAVOURITE_PREFIX + category)
    if a.orders > 0:
        share = min(a.coupon_orders, a.orders) / a.orders
        if share >= rules.deal_share:
            tags.append(DEAL_SEEKER)
        elif a.orders >= rules.full_price_min_orders and share <= rules.full_price_share:
            tags.append(FULL_PRICE)
    return tuple(tags)


def profiles(members: Sequence[MemberActivity], as_of: datetime, rules: Rules | None = None
             ) -> list[Profile]:
    """Score and label every member as of ``as_of`` (sorted by member id).

    Quintiles are taken among members with at least one order; the others get
    scores of 0 and the "new" or "prospect" segment.
    """
    rules = rules or Rules()
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    ids = [a.member_id for a in members]
    if len(set(ids)) != len(ids):
        raise ValueError("each member may appear only once")
    ordered = sorted(members, key=lambda a: a.member_id)
    buyers = [a for a in ordered if a.orders > 0]
    r = quintile_scores([_days(as_of, a.last_order_at) for a in buyers],  # type: ignore[arg-type]
                        higher_is_better=False)
    f = quintile_scores([float(a.orders) for a in buyers])
    m = quintile_scores([float(a.spend_fen) for a in buyers])
    scores = {a.member_id: (r[n], f[n], m[n]) for n, a in enumerate(buyers)}
    out = []
    for a in ordered:
        rs, fs, ms = scores.get(a.member_id, (0, 0, 0))
        first = a.first_order_at or a.joined_at
        is_new = (_days(as_of, a.joined_at) <= rules.new_days
                  or (a.orders <= 1 and _days(as_of, first) <= rules.new_days))
        out.append(Profile(
            member_id=a.member_id, recency=rs, frequency=fs, monetary=ms,
            segment=segment_of(rs, fs, ms, is_new), lifecycle=lifecycle_of(a, as_of, rules),
            tags=tags_of(a, rules),
        ))
    return out
