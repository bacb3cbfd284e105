"""Tiers: growth over a rolling window, upgrade at once, downgrade only at a review.

Growth value is the yuan a member spent (purchases add, returns remove) in
the last ``tier_window_days``. Crossing a threshold upgrades at once; a
review at each period boundary (every ``tier_period_months`` from 1 January,
Asia/Shanghai) sets the tier the window earns, which may be lower.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from loyalty.common import days, local_date, local_midnight, now_or
from loyalty.config import Settings, TierDef, settings
from loyalty.errors import NotFound
from loyalty.members.lock import lock_member
from loyalty.members.models import Member
from loyalty.points.models import LedgerEntry
from loyalty.tiers.models import TierChange

# Built once: it runs for every order.
_WINDOW_GROWTH = select(func.coalesce(func.sum(LedgerEntry.growth), 0)).where(
    LedgerEntry.member_id == bindparam("member_id"),
    LedgerEntry.created_at > bindparam("start"),
    LedgerEntry.created_at <= bindparam("end"),
)


@dataclass(frozen=True)
class TierStatus:
    """Where a member stands: tier, benefits, growth and the distance to the next tier."""

    tier: TierDef
    growth: int
    next_tier: TierDef | None
    to_next: int  # growth still needed for the next tier (0 at the top)
    next_review: date  # the day the tier is reviewed (a downgrade can only happen then)


def rank(code: str, st: Settings | None = None) -> int:
    st = st or settings()
    for i, t in enumerate(st.tiers):
        if t.code == code:
            return i
    return 0


def tier_for(growth: int, st: Settings | None = None) -> TierDef:
    """The highest tier whose threshold ``growth`` reaches."""
    st = st or settings()
    best = st.tiers[0]
    for t in st.tiers:
        if growth >= t.threshold:
            best = t
    return best


def growth_in_window(s: Session, member_id: int, as_of: datetime, st: Settings | None = None) -> int:
    """Growth value of the window ending at ``as_of`` (inclusive)."""
    st = st or settings()
    params = {"member_id": member_id, "start": as_of - days(st.tier_window_days), "end": as_of}
    return max(0, int(s.execute(_WINDOW_GROWTH, params).scalar_one()))


def _period_starts(st: Settings) -> list[int]:
    """The months that open a review period: every N months from January, each year anew."""
    return list(range(1, 13, st.tier_period_months))


def boundaries(start: datetime, end: datetime, st: Settings | None = None) -> list[datetime]:
    """Review boundaries (Asia/Shanghai midnights) in ``(start, end]``."""
    st = st or settings()
    out: list[datetime] = []
    year = local_date(start).year
    while True:
        for month in _period_starts(st):
            b = local_midnight(date(year, month, 1))
            if b > end:
                return out
            if b > start:
                out.append(b)
        year += 1


def last_boundary(as_of: datetime, st: Settings | None = None) -> datetime:
    """The most recent review boundary at or before ``as_of``."""
    st = st or settings()
    d = local_date(as_of)
    month = max(m for m in _period_starts(st) if m <= d.month)
    return local_midnight(date(d.year, month, 1))


def next_boundary(as_of: datetime, st: Settings | None = None) -> datetime:
    """The first review boundary after ``as_of``."""
    st = st or settings()
    d = local_date(as_of)
    later = [m for m in _period_starts(st) if m > d.month]
    return local_midnight(date(d.year, later[0], 1) if later else date(d.year + 1, 1, 1))


def _change(s: Session, member: Member, to: str, reason: str, growth: int, at: datetime) -> None:
    s.add(TierChange(member_id=member.id, from_tier=member.tier, to_tier=to, reason=reason, growth=growth,
                     changed_at=at))
    member.tier = to


def _window_upto(s: Session, member_id: int, as_of: datetime, upto_id: int, st: Settings) -> int:
    """Growth of the window ending at ``as_of`` counting only entries up to ``upto_id``."""
    q = select(func.coalesce(func.sum(LedgerEntry.growth), 0)).where(
        LedgerEntry.member_id == member_id,
        LedgerEntry.id <= upto_id,
        LedgerEntry.created_at > as_of - days(st.tier_window_days),
        LedgerEntry.created_at <= as_of,
    )
    return max(0, int(s.execute(q).scalar_one()))


def upgrade_if_due(s: Session, member: Member, at: datetime) -> bool:
    """Upgrade at once when the window's growth crosses a higher threshold (member locked)."""
    st = settings()
    if rank(member.tier, st) == len(st.tiers) - 1:
        return False  # already at the top: nothing to sum
    growth = growth_in_window(s, member.id, at, st)
    target = tier_for(growth, st)
    if rank(target.code, st) > rank(member.tier, st):
        _change(s, member, target.code, "upgrade", growth, at)
        return True
    return False


def review_member(s: Session, member_id: int, as_of: datetime | None = None) -> str:
    """Apply every review boundary the member has not been reviewed at; returns the tier."""
    at = now_or(as_of)
    st = settings()
    member = lock_member(s, member_id)
    since = member.tier_reviewed_at or member.created_at
    marks = boundaries(since, at, st)
    for b in marks:
        growth = growth_in_window(s, member.id, b, st)
        target = tier_for(growth, st).code
        if target != member.tier:
            _change(s, member, target, "review", growth, b)
        member.tier_reviewed_at = b
    if marks:
        # A review that runs late must not undo an upgrade earned after its boundary:
        # replay those upgrades, each with the window it saw when it was earned.
        later = s.execute(
            select(LedgerEntry.id, LedgerEntry.created_at).where(
                LedgerEntry.member_id == member.id,
                LedgerEntry.growth > 0,
                LedgerEntry.created_at > marks[-1],
            ).order_by(LedgerEntry.id)
        ).all()
        for entry_id, earned_at in later:
            growth = _window_upto(s, member.id, earned_at, entry_id, st)
            reached = tier_for(growth, st)
            if rank(reached.code, st) > rank(member.tier, st):
                _change(s, member, reached.code, "upgrade", growth, earned_at)
    return member.tier


def members_due_for_review(s: Session, as_of: datetime | None = None) -> list[int]:
    """Active members whose last review is before the latest boundary."""
    b = last_boundary(now_or(as_of))
    q = select(Member.id).where(
        Member.status == "active",
        (Member.tier_reviewed_at.is_(None) & (Member.created_at < b)) | (Member.tier_reviewed_at < b),
    ).order_by(Member.id)
    return list(s.execute(q).scalars())


def status(s: Session, member_id: int, now: datetime | None = None) -> TierStatus:
    """Current tier, benefits, growth and how far it is to the next tier."""
    at = now_or(now)
    st = settings()
    member = s.get(Member, member_id)
    if member is None:
        raise NotFound("No such member.", code="member_not_found")
    tier = st.tier(member.tier)
    growth = growth_in_window(s, member_id, at)
    higher = [t for t in st.tiers if t.threshold > tier.threshold]
    nxt = higher[0] if higher else None
    next_b = next_boundary(at, st)
    return TierStatus(
        tier=tier,
        growth=growth,
        next_tier=nxt,
        to_next=max(0, nxt.threshold - growth) if nxt else 0,
        next_review=local_date(next_b),
    )


def replay(
    entries: Iterable[tuple[datetime, int]],
    joined_at: datetime,
    reviewed_until: datetime | None,
    st: Settings | None = None,
) -> str:
    """Rebuild a tier from ledger growth entries ``(at, growth)`` alone, given in ledger order.

    Applies an upgrade at each entry (with the window of the entries so far)
    and a review at each boundary up to ``reviewed_until``, exactly as the
    live system does when orders arrive in time; used to check the stored
    tier and to rebuild it after a configuration change.
    """
    st = st or settings()
    window = st.tier_window_days
    reviews = boundaries(joined_at, reviewed_until, st) if reviewed_until is not None else []
    seen: list[tuple[datetime, int]] = []
    tier = st.tiers[0].code

    def window_sum(at: datetime) -> int:
        return max(0, sum(g for t, g in seen if at - days(window) < t <= at))

    def review(b: datetime) -> str:
        return tier_for(window_sum(b), st).code

    for at, g in entries:
        # A review at b counts entries up to and including b, and precedes later ones.
        while reviews and reviews[0] < at:
            tier = review(reviews.pop(0))
        seen.append((at, g))
        if g > 0:
            target = tier_for(window_sum(at), st)
            if rank(target.code, st) > rank(tier, st):
                tier = target.code
    for b in reviews:
        tier = review(b)
    return tier


def rebuild(s: Session, member_id: int) -> str:
    """The tier the member's ledger implies (does not change anything)."""
    member = s.get(Member, member_id)
    if member is None:
        raise NotFound("No such member.", code="member_not_found")
    rows = s.execute(
        select(LedgerEntry.created_at, LedgerEntry.growth)
        .where(LedgerEntry.member_id == member_id, LedgerEntry.growth != 0)
        .order_by(LedgerEntry.id)
    ).all()
    return replay([(r[0], int(r[1])) for r in rows], member.created_at, member.tier_reviewed_at)
