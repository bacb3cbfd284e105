"""Referrals (推荐有礼): both sides rewarded once, when the friend joins or first buys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.config import settings
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.members.lock import lock_member
from loyalty.members.models import Member
from loyalty.points import service as points
from loyalty.referrals.models import Referral


@dataclass(frozen=True)
class ReferralInfo:
    code: str
    friends_joined: int
    friends_rewarded: int
    referrer_points: int
    referee_points: int
    trigger: str  # join | first_order


def _reward(s: Session, ref: Referral, at: datetime) -> None:
    st = settings()
    # Lock both members in id order so two rewards never deadlock.
    for mid in sorted((ref.referrer_id, ref.referee_id)):
        lock_member(s, mid, allow_closed=True)
    for mid, pts in ((ref.referrer_id, st.referrer_points), (ref.referee_id, st.referee_points)):
        if pts and s.get(Member, mid).status == "active":
            points.credit(
                s, mid, pts, kind="referral", at=at,
                key=f"referral:{ref.id}:{mid}", reason=f"referral {ref.id}",
            )
    ref.status = "rewarded"
    ref.rewarded_at = at


def record(s: Session, referrer_id: int, referee_id: int, at: datetime) -> bool:
    """Record that ``referee`` joined with ``referrer``'s code; reward now if the trigger is joining."""
    if referrer_id == referee_id:
        raise Refused("You cannot refer yourself.", code="self_referral")
    if s.execute(select(Referral.id).where(Referral.referee_id == referee_id)).first():
        raise Refused("This member was already referred.", code="already_referred")
    ref = Referral(referrer_id=referrer_id, referee_id=referee_id, status="pending", created_at=at)
    s.add(ref)
    s.flush()
    if settings().referral_trigger == "join":
        _reward(s, ref, at)
        return True
    return False


def apply_code(s: Session, member_id: int, code: str, now: datetime | None = None) -> bool:
    """A member who joined without a code adds one later; returns whether rewards were given."""
    at = now_or(now)
    member = lock_member(s, member_id)
    referrer = s.execute(
        select(Member).where(Member.referral_code == (code or "").strip().upper(), Member.status == "active")
    ).scalar_one_or_none()
    if referrer is None:
        raise InvalidInput("Unknown referral code.", code="unknown_referral_code")
    if referrer.id == member.id:
        raise Refused("You cannot refer yourself.", code="self_referral")
    member.referred_by_id = referrer.id
    return record(s, referrer.id, member.id, at)


def on_first_order(s: Session, member_id: int, at: datetime) -> bool:
    """Called after a member's order: reward a pending referral when the trigger is the first order."""
    if settings().referral_trigger != "first_order":
        return False
    ref = s.execute(
        select(Referral).where(Referral.referee_id == member_id, Referral.status == "pending")
    ).scalar_one_or_none()
    if ref is None:
        return False
    _reward(s, ref, at)
    return True


def awaits_first_order(s: Session, member_id: int) -> bool:
    """Whether this member's first order would reward a referral (trigger ``first_order``, one pending)."""
    if settings().referral_trigger != "first_order":
        return False
    pending = s.execute(
        select(Referral.id).where(Referral.referee_id == member_id, Referral.status == "pending")
    ).first()
    return pending is not None


def info(s: Session, member_id: int) -> ReferralInfo:
    """The member's code and how their referrals are going."""
    m = s.get(Member, member_id)
    if m is None or m.status != "active":
        raise NotFound("No such member.", code="member_not_found")
    st = settings()
    rows = dict(
        s.execute(
            select(Referral.status, func.count()).where(Referral.referrer_id == member_id).group_by(Referral.status)
        ).all()
    )
    return ReferralInfo(
        m.referral_code, sum(rows.values()), rows.get("rewarded", 0),
        st.referrer_points, st.referee_points, st.referral_trigger,
    )
