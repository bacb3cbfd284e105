"""Bot conversations (when, which channel, whose, how many turns and fallbacks) and their 1-5 scores."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Index, Integer, String, UniqueConstraint
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


class BotRating(Base):
    """A shopper's 1-5 score of a conversation the bot handled alone, asked for at its goodbye.

    Append-only. The sender is kept as the same hash as in ``conversations``;
    ``session_started_at`` is when the Rasa session began: one score per sender
    and session, so a retried action or a second score in the session counts
    once. ``member_id``: the channel address's member when rated (a store's view).
    """

    __tablename__ = "bot_ratings"
    __table_args__ = (
        UniqueConstraint("sender_key", "session_started_at"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        Index("ix_bot_ratings_rated", "rated_at"),
        Index("ix_bot_ratings_member", "member_id"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    sender_key: Mapped[str] = Column(String(64), nullable=False)
    session_started_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    channel: Mapped[str] = Column(String(20), nullable=False)
    member_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True)
    rating: Mapped[int] = Column(Integer, nullable=False)
    rated_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
