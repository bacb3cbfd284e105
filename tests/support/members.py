"""Members made directly through the core, for tests that talk to the running assistant."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from loyalty import db
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.points import service as points

_phones = itertools.count(13900000001)


def make_member(channel: str, address: str, points_balance: int = 0) -> int:
    """A consenting member reachable at (channel, address), e.g. ("webchat", "web-<visitor>"); its id."""
    joined = db.run(membership.signup, phone=str(next(_phones)), consent=True, channel=channel, external_id=address)
    if points_balance:
        db.run(points.adjust, joined.card.id, points_balance, reason="test balance", actor="tests")
    return joined.card.id


def member_state(member_id: int) -> tuple[str, int, str | None]:
    """(status, points balance, phone) of a member, read afresh."""
    with db.session() as s:
        m = s.execute(select(Member).where(Member.id == member_id)).scalar_one()
        return m.status, m.points_balance, m.phone
