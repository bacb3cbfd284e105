"""The review list: shoppers' messages that fell to the fallback or were answered with low confidence."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow

REASONS = ("fallback", "gated", "low_confidence")
# new → reviewed (an intent chosen) → exported (written to data/nlu); new → dismissed.
STATUSES = ("new", "reviewed", "dismissed", "exported")


class ReviewMessage(Base):
    """One distinct (masked) message text; seeing it again counts, it adds no row.

    The text is masked before it is stored (phone numbers, codes, e-mail
    addresses: loyalty/nlu_review/service.py), and the conversation is kept only
    as a hash, so the list holds no personal data.
    """

    __tablename__ = "review_messages"
    __table_args__ = (
        CheckConstraint("reason IN ('fallback', 'gated', 'low_confidence')", name="known_reason"),
        CheckConstraint("status IN ('new', 'reviewed', 'dismissed', 'exported')", name="known_status"),
        Index("ix_review_messages_status_last_seen", "status", "last_seen_at"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    # sha256 of the normalised masked text: one row per distinct message.
    text_key: Mapped[str] = Column(String(64), unique=True, nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    language: Mapped[str | None] = Column(String(5), nullable=True)
    channel: Mapped[str] = Column(String(20), nullable=False)
    # A hash of the last conversation it came from: groups repeats, names nobody.
    conversation: Mapped[str] = Column(String(16), nullable=False)
    reason: Mapped[str] = Column(String(16), nullable=False)
    # What the model made of it: its best intent (before any fallback) and the runner-up.
    intent: Mapped[str | None] = Column(String(64), nullable=True)
    confidence: Mapped[float] = Column(Float, nullable=False)
    second_intent: Mapped[str | None] = Column(String(64), nullable=True)
    second_confidence: Mapped[float | None] = Column(Float, nullable=True)
    seen: Mapped[int] = Column(Integer, default=1, nullable=False)
    first_seen_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    status: Mapped[str] = Column(String(10), default="new", nullable=False)
    # Set by a reviewer: the intent the message should have had.
    reviewed_intent: Mapped[str | None] = Column(String(64), nullable=True)
    reviewed_by: Mapped[str | None] = Column(String(64), nullable=True)
    reviewed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    exported_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
