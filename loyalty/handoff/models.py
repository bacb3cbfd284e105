"""Tables of the human takeover, on the core's metadata so one migration chain covers all."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, relationship

from loyalty.db import Base, UTCDateTime, utcnow

ROLES = ("agent", "supervisor")
REASONS = ("request", "complaint", "fallback", "priority", "signup_help")
# queued → active → closed; queued → cancelled (the shopper went back to the bot, or restarted).
STATUSES = ("queued", "active", "closed", "cancelled")
OPEN = ("queued", "active")


class Agent(Base):
    """A customer-service agent or supervisor who logs into the console."""

    __tablename__ = "agents"
    __table_args__ = (CheckConstraint("role IN ('agent', 'supervisor')", name="known_role"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    username: Mapped[str] = Column(String(32), unique=True, nullable=False)
    display_name: Mapped[str] = Column(String(50), nullable=False)
    # argon2id, with its parameters and salt inside the string.
    password_hash: Mapped[str] = Column(String(255), nullable=False)
    role: Mapped[str] = Column(String(12), default="agent", nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)
    # Bumped on password change, deactivation or "log out everywhere": older session cookies stop working.
    session_version: Mapped[int] = Column(Integer, default=1, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    last_login_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


class LoginThrottle(Base):
    """Failed console logins of one (name, client address) pair, or of one address under any name.

    Keyed by the name as typed, whether or not an agent has it, so that an
    unknown name locks exactly as a real one (see loyalty/handoff/auth.py).
    Rows are short-lived: each is deleted once ``expires_at`` has passed.
    """

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("username", "address", name="uq_login_throttles_username_address"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    # A normalised username, a stand-in for a name no agent can have, or "" for the address as a whole.
    username: Mapped[str] = Column(String(32), nullable=False)
    # The client address (an IPv6 address by its /64 network), or "unknown".
    address: Mapped[str] = Column(String(64), nullable=False)
    failures: Mapped[int] = Column(Integer, default=0, nullable=False)
    window_start: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    locked_until: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = Column(UTCDateTime, nullable=False, index=True)


class Handoff(Base):
    """One conversation handed to a person: waiting, with an agent, or over."""

    __tablename__ = "handoffs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'active', 'closed', 'cancelled')", name="known_status"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_1_to_5"),
        # At most one open handoff per conversation, whatever the race.
        Index(
            "uq_handoffs_open_sender", "sender_id", unique=True,
            sqlite_where=text("status IN ('queued', 'active')"),
            postgresql_where=text("status IN ('queued', 'active')"),
        ),
        Index("ix_handoffs_queue", "status", "priority", "created_at"),
        Index("ix_handoffs_sender_created", "sender_id", "created_at"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    sender_id: Mapped[str] = Column(String(128), nullable=False)  # the Rasa conversation id
    channel: Mapped[str] = Column(String(20), nullable=False)  # wechat | webchat | …
    member_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True, index=True)
    reason: Mapped[str] = Column(String(12), nullable=False)
    # Higher first; 0 for tiers without priority service.
    priority: Mapped[int] = Column(Integer, default=0, nullable=False)
    language: Mapped[str] = Column(String(5), default="zh", nullable=False)
    status: Mapped[str] = Column(String(10), default="queued", nullable=False)
    agent_id: Mapped[int | None] = Column(ForeignKey("agents.id"), nullable=True, index=True)
    out_of_hours: Mapped[bool] = Column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    taken_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    # Who ended it: an agent's username, "shopper" (cancelled), "restart".
    closed_by: Mapped[str | None] = Column(String(32), nullable=True)
    rating: Mapped[int | None] = Column(Integer, nullable=True)
    rated_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)

    agent: Mapped[Agent | None] = relationship(Agent)


class HandoffNote(Base):
    """An internal note on a handoff, or a record of what the console did (never shown to the shopper)."""

    __tablename__ = "handoff_notes"

    id: Mapped[int] = Column(Integer, primary_key=True)
    handoff_id: Mapped[int] = Column(ForeignKey("handoffs.id"), index=True, nullable=False)
    agent_id: Mapped[int | None] = Column(ForeignKey("agents.id"), nullable=True)
    # note: written by an agent; system: transfer, take, undelivered reply and the like.
    kind: Mapped[str] = Column(String(12), default="note", nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)

    agent: Mapped[Agent | None] = relationship(Agent)
