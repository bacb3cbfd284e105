"""Record conversation facts from the bot's events (a user turn, maybe a fallback; a pause for an agent),
and the shopper's score of a conversation the bot handled alone.

A conversation is a sender's run of turns with no gap longer than :data:`GAP`
(4 hours, Rasa's ``session_expiration_time`` in domain/basics.yml); the next
turn after a longer silence starts a new one. The sender id is stored only as
a hash. The bot's event broker (bot/conversations.py) calls these functions;
the dashboard reads the rows (loyalty/reports/service.py).

A score (:func:`rate_bot`) is kept once per sender and Rasa session; closing
an account erases its scores (:func:`forget_member`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.common import now_or, parse_rating
from loyalty.conversations.models import BotRating, Conversation
from loyalty.members.service import identity_owner

GAP = timedelta(minutes=240)


def sender_key(sender_id: str) -> str:
    return hashlib.sha256(f"conversation:{sender_id}".encode()).hexdigest()


def _current(s: Session, key: str, at: datetime) -> Conversation | None:
    """The sender's conversation still running at ``at`` (last turn within the gap), if any."""
    return s.execute(select(Conversation).where(Conversation.sender_key == key, Conversation.last_at >= at - GAP)
                     .order_by(Conversation.last_at.desc()).limit(1).with_for_update()).scalar_one_or_none()


def record_turn(s: Session, sender_id: str, channel: str, at: datetime, *, fallback: bool = False) -> int:
    """Count one shopper message (``fallback``: the model did not understand it); returns the conversation id."""
    key = sender_key(sender_id)
    c = _current(s, key, at)
    if c is None:
        c = Conversation(sender_key=key, channel=channel[:20], started_at=at, last_at=at, user_turns=0,
                         fallback_turns=0, handed_off=False, with_agent=False, agent_turns=0)
        s.add(c)
    if c.member_id is None:  # the shopper may have joined or linked during the conversation
        c.member_id = identity_owner(s, channel, sender_id)
    c.user_turns += 1
    if c.with_agent:
        c.agent_turns += 1
    else:
        c.fallback_turns += int(fallback)
    c.last_at = max(c.last_at, at)
    s.flush()
    return int(c.id)


def record_handoff(s: Session, sender_id: str, at: datetime) -> bool:
    """An agent takes the sender's running conversation (Rasa's ``pause``); False when none runs."""
    c = _current(s, sender_key(sender_id), at)
    if c is None:
        return False
    c.handed_off = c.with_agent = True
    return True


def record_handback(s: Session, sender_id: str, at: datetime) -> bool:
    """The conversation is the bot's again (``resume`` or ``restart``); False when none runs."""
    c = _current(s, sender_key(sender_id), at)
    if c is None:
        return False
    c.with_agent = False
    return True


def rate_bot(s: Session, sender_id: str, channel: str, score: object, *, session_started_at: datetime,
             now: datetime | None = None) -> bool:
    """Record the shopper's 1-5 score of the bot's conversation in the session begun at ``session_started_at``.

    True when recorded; False when the session already has its score (a retried
    action, or a second score: the first one counts). A score that is not a
    whole number from 1 to 5 raises ``InvalidInput`` and writes nothing.
    """
    value = parse_rating(score)
    if session_started_at.tzinfo is None:
        raise ValueError("naive datetime")
    row = BotRating(sender_key=sender_key(sender_id), session_started_at=session_started_at, channel=channel[:20],
                    member_id=identity_owner(s, channel, sender_id), rating=value, rated_at=now_or(now))
    return db.add_first(s, row)


def forget_member(s: Session, member_id: int, sender_ids: list[str]) -> int:
    """Delete the bot scores of a member and of their channel addresses (also those given before
    the address was linked to them); returns how many."""
    keys = [sender_key(x) for x in sender_ids]
    result = s.execute(delete(BotRating).where(or_(BotRating.member_id == member_id, BotRating.sender_key.in_(keys)))
                       .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)
