"""Record conversation facts from the bot's events: a user turn (maybe a fallback), a pause for an agent.

A conversation is a sender's run of turns with no gap longer than :data:`GAP`
(4 hours, Rasa's ``session_expiration_time`` in domain/basics.yml); the next
turn after a longer silence starts a new one. The sender id is stored only as
a hash. The bot's event broker (bot/conversations.py) calls these functions;
the dashboard reads the rows (loyalty/reports/service.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.conversations.models import Conversation
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
