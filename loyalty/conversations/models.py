"""One row per bot conversation: when, which channel, whose, how many turns, how many fell to the fallback."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime


class Conversation(Base):
    """A shopper's run of messages with no gap longer than :data:`service.GAP` (Rasa's session length).

    The sender is kept only as a hash; no text is stored. ``handed_off``: the
    conversation was paused for an agent (Rasa's ``pause`` event) while it ran.
    Turns while an agent has the conversation count in ``agent_turns``, never
    as fallbacks (the bot was not answering).
    """

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_sender_last", "sender_key", "last_at"),
        Index("ix_conversations_started", "started_at"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    sender_key: Mapped[str] = Column(String(64), nullable=False)
    channel: Mapped[str] = Column(String(20), nullable=False)
    # The member the channel address belongs to, when known (for a store's view).
    member_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True)
    started_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    last_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    user_turns: Mapped[int] = Column(Integer, default=0, nullable=False)
    fallback_turns: Mapped[int] = Column(Integer, default=0, nullable=False)
    handed_off: Mapped[bool] = Column(Boolean, default=False, nullable=False)
    # With an agent now (paused, not yet handed back), and the shopper's turns spent with one.
    with_agent: Mapped[bool] = Column(Boolean, default=False, nullable=False)
    agent_turns: Mapped[int] = Column(Integer, default=0, nullable=False)
