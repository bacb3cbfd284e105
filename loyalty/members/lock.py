"""The member row lock every change to a member's points or coupons takes first."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from loyalty.common import note_balance
from loyalty.errors import NotFound, Refused
from loyalty.members.models import Member

# populate_existing: a Member read earlier in this transaction (before we waited for
# the lock) must be overwritten with what the previous lock holder committed.
_LOCK_MEMBER = (
    select(Member)
    .where(Member.id == bindparam("member_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def lock_member(s: Session, member_id: int, *, allow_closed: bool = False) -> Member:
    """Load a member and lock its row for the rest of the transaction.

    Every operation that changes a member's points or coupons takes this
    lock first, so their writes never interleave (PostgreSQL row lock;
    SQLite serialises writers with BEGIN IMMEDIATE anyway).
    """
    if not isinstance(member_id, int) or isinstance(member_id, bool):
        raise NotFound("No such member.", code="member_not_found")
    member = s.execute(_LOCK_MEMBER, {"member_id": member_id}).scalar_one_or_none()
    if member is None:
        raise NotFound("No such member.", code="member_not_found")
    if member.status != "active" and not allow_closed:
        raise Refused("This account is closed.", code="member_closed")
    note_balance(s, member.id, member.points_balance)
    return member
