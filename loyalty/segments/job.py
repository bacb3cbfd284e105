"""Recompute RFM scores, segments, lifecycle stages and tags for every member.

Reads orders, returns and coupon redemptions, calls the pure functions of
:mod:`loyalty.segments.rfm` and writes one ``MemberSegment`` row per active member
(closed accounts lose theirs). Running it twice with the same data and the
same ``as_of`` writes the same rows.

Each change of a member's lifecycle stage or RFM segment (the first
assignment included, from NULL) is appended to ``segment_moves`` in the same
transaction, keyed by member, dimension and run (``as_of``): a retried run
adds no second row, a run that changes nothing adds none.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from loyalty import config
from loyalty.catalogue.models import Product
from loyalty.common import now_or
from loyalty.coupons.models import Coupon
from loyalty.db import insert_new
from loyalty.members.models import Member, MemberSegment, SegmentMove
from loyalty.orders.models import Order, OrderLine
from loyalty.segments.rfm import LIFECYCLES, SEGMENTS, MemberActivity, Profile, Rules, profiles

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentRun:
    """What one recomputation did."""

    as_of: datetime
    members: int
    by_segment: dict[str, int]
    by_lifecycle: dict[str, int]
    moves: int = 0  # segment_moves rows this run added


@dataclass(frozen=True)
class SegmentView:
    """A member's segment as the agent console and the bot show it."""

    segment: str
    segment_zh: str
    segment_en: str
    lifecycle: str
    lifecycle_zh: str
    lifecycle_en: str
    recency: int
    frequency: int
    monetary: int
    tags: tuple[str, ...]
    as_of: datetime


def rules_from_settings() -> Rules:
    """Lifecycle day thresholds from the settings."""
    st = config.settings()
    return Rules(
        new_days=st.lifecycle_new_days,
        active_days=st.lifecycle_active_days,
        churn_days=st.lifecycle_churn_days,
    )


def activities(s: Session) -> list[MemberActivity]:
    """One activity summary per active member, from orders, returns and redeemed coupons."""
    members = s.execute(
        select(Member.id, Member.created_at).where(Member.status == "active").order_by(Member.id)
    ).all()
    orders = {
        int(r.member_id): r for r in s.execute(
            select(Order.member_id, func.count(Order.id).label("n"),
                   func.sum(Order.amount_fen).label("spend"),
                   func.min(Order.placed_at).label("first"), func.max(Order.placed_at).label("last"))
            .where(Order.kind == "order", Order.member_id.is_not(None))
            .group_by(Order.member_id)
        ).all()
    }
    returned = dict(s.execute(
        select(Order.member_id, func.sum(Order.amount_fen))
        .where(Order.kind == "return", Order.member_id.is_not(None))
        .group_by(Order.member_id)
    ).all())
    by_category: dict[int, dict[str, int]] = {}
    for member_id, category, spend in s.execute(
        select(Order.member_id, Product.category, func.sum(OrderLine.qty * OrderLine.unit_price_fen))
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(Order.kind == "order", Order.member_id.is_not(None))
        .group_by(Order.member_id, Product.category)
    ).all():
        by_category.setdefault(int(member_id), {})[str(category)] = int(spend or 0)
    coupons = dict(s.execute(
        select(Coupon.member_id, func.count(Coupon.id))
        .where(Coupon.redeemed_at.is_not(None))
        .group_by(Coupon.member_id)
    ).all())
    out = []
    for m in members:
        o = orders.get(int(m.id))
        spend = int(o.spend or 0) - int(returned.get(m.id) or 0) if o else 0
        out.append(MemberActivity(
            member_id=int(m.id), joined_at=m.created_at,
            orders=int(o.n) if o else 0, spend_fen=max(spend, 0),
            first_order_at=o.first if o else None, last_order_at=o.last if o else None,
            category_spend=by_category.get(int(m.id), {}),
            coupon_orders=int(coupons.get(m.id) or 0),
        ))
    return out


def recompute_all(s: Session, *, now: datetime | None = None, rules: Rules | None = None
                  ) -> SegmentRun:
    """Score every active member as of ``now`` and store the results (one transaction)."""
    as_of = now_or(now)
    result = profiles(activities(s), as_of, rules or rules_from_settings())
    existing: dict[int, tuple[str, str]] = {int(m): (lc, sg) for m, lc, sg in s.execute(
        select(MemberSegment.member_id, MemberSegment.lifecycle, MemberSegment.segment))}
    keep = {p.member_id for p in result}
    stale = [mid for mid in existing if mid not in keep]
    if stale:
        s.execute(delete(MemberSegment).where(MemberSegment.member_id.in_(stale)))
    # Compared against the rows already read: no query per member.
    moves = _moves(existing, result, as_of)
    _store(s, existing, result, as_of)
    run = SegmentRun(
        as_of=as_of, members=len(result),
        by_segment=dict(sorted(Counter(p.segment for p in result).items())),
        by_lifecycle=dict(sorted(Counter(p.lifecycle for p in result).items())),
        # A retried run (same as_of) finds its rows there and adds none.
        moves=insert_new(s, SegmentMove, moves, ["member_id", "dimension", "run_at"]),
    )
    log.info("segments recomputed: members=%d moves=%d segments=%s", run.members, run.moves, run.by_segment)
    return run


def _store(s: Session, existing: dict[int, tuple[str, str]], result: list[Profile], as_of: datetime) -> None:
    """Insert the rows of members scored for the first time, update the others': one executemany each."""
    new, old = [], []
    for p in result:
        row = {"recency": p.recency, "frequency": p.frequency, "monetary": p.monetary, "segment": p.segment,
               "lifecycle": p.lifecycle, "tags": list(p.tags), "as_of": as_of}
        if p.member_id in existing:
            old.append({**row, "mid": p.member_id})
        else:
            new.append({**row, "member_id": p.member_id})
    if new:
        s.execute(insert(MemberSegment), new)
    if old:
        t = MemberSegment.__table__  # every key but "mid" names a column to set
        s.execute(update(t).where(t.c.member_id == bindparam("mid")), old)


def _moves(existing: dict[int, tuple[str, str]], result: list[Profile], as_of: datetime) -> list[dict[str, Any]]:
    """The movement rows of one run: every stage or segment that differs from the stored one."""
    out = []
    for p in result:
        old = existing.get(p.member_id)
        for dimension, before, after in (("lifecycle", old[0] if old else None, p.lifecycle),
                                         ("rfm", old[1] if old else None, p.segment)):
            if before != after:
                out.append({"member_id": p.member_id, "dimension": dimension, "from_value": before,
                            "to_value": after, "run_at": as_of})
    return out


def member_segment(s: Session, member_id: int) -> SegmentView | None:
    """The member's latest segment with zh/en names, or None before the first run."""
    row = s.get(MemberSegment, member_id)
    if row is None:
        return None
    seg = SEGMENTS.get(row.segment, (row.segment, row.segment))
    life = LIFECYCLES.get(row.lifecycle, (row.lifecycle, row.lifecycle))
    return SegmentView(
        segment=row.segment, segment_zh=seg[0], segment_en=seg[1],
        lifecycle=row.lifecycle, lifecycle_zh=life[0], lifecycle_en=life[1],
        recency=row.recency, frequency=row.frequency, monetary=row.monetary,
        tags=tuple(row.tags or ()), as_of=row.as_of,
    )
