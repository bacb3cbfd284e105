"""The sends ledger, one-time subscription credits, journey switches and copy, broadcasts, the web chat inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow


class OutreachSend(Base):
    """One step of a journey for one member on one occasion: a record first, then (maybe) a message.

    ``idem_key`` (member, journey, step, occasion) is unique, so a crash or a second
    scheduler can repeat the planning but never the message. ``status``:
    due → claimed → ready (rules checked, route chosen, credit spent; its batch is going out)
    → sending → sent | failed | in_doubt (crashed during the API call); a web chat inbox message
    goes claimed → sent (the row is the delivery);
    skipped (a rule said no, ``reason`` says which); control (holdout: recorded, never sent).
    """

    __tablename__ = "outreach_sends"
    __table_args__ = (
        Index("ix_outreach_status_due", "status", "due_at"),
        Index("ix_outreach_member_kind", "member_id", "kind", "done_at"),
        Index("ix_outreach_journey", "journey", "arm"),
        # A journey's recent sends (the report's open windows, the outcome freeze).
        Index("ix_outreach_journey_done", "journey", "done_at"),
        # A journey's messages sent, counted from the index alone on PostgreSQL (the report's "reached").
        Index("ix_outreach_journey_status", "journey", "status", postgresql_include=["reason", "done_at"]),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    idem_key: Mapped[str] = Column(String(160), unique=True, nullable=False)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    journey: Mapped[str] = Column(String(60), nullable=False)
    step: Mapped[str] = Column(String(30), nullable=False)
    occasion: Mapped[str] = Column(String(40), nullable=False)
    kind: Mapped[str] = Column(String(10), nullable=False)  # service | marketing
    arm: Mapped[str] = Column(String(10), nullable=False)  # treatment | control
    status: Mapped[str] = Column(String(10), nullable=False)
    reason: Mapped[str | None] = Column(String(40), nullable=True)
    facts: Mapped[dict] = Column(JSON, default=dict, nullable=False)
    channel: Mapped[str | None] = Column(String(10), nullable=True)  # wechat | webchat | sms
    route: Mapped[str | None] = Column(String(12), nullable=True)  # cs | template | subscribe | inbox | sms
    errcode: Mapped[str | None] = Column(String(40), nullable=True)
    attempts: Mapped[int] = Column(Integer, default=0, nullable=False)
    planned_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    due_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    claimed_by: Mapped[str | None] = Column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    # When it was sent, skipped or failed; for the control arm, when it would have been sent.
    done_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


class SubscriptionCredit(Base):
    """One one-time subscription-message credit (订阅通知) a member granted for one template."""

    __tablename__ = "subscription_credits"
    __table_args__ = (Index("ix_subscription_credits_open", "member_id", "template_id", "spent_at"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    template_id: Mapped[str] = Column(String(64), nullable=False)
    granted_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    spent_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    # The member refused the template since (WeChat's settings, or WeChat answered 43101): never spent.
    revoked_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    send_id: Mapped[int | None] = Column(ForeignKey("outreach_sends.id"), unique=True, nullable=True)
    # The callback (and template) that granted it: WeChat retries a callback, a credit is granted once.
    grant_key: Mapped[str | None] = Column(String(200), unique=True, nullable=True)


class JourneySwitch(Base):
    """A journey or broadcast paused by staff (absent: running as configured)."""

    __tablename__ = "journey_switches"

    journey: Mapped[str] = Column(String(60), primary_key=True)
    paused: Mapped[bool] = Column(Boolean, default=False, nullable=False)
    changed_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    actor: Mapped[str] = Column(String(64), nullable=False)


class JourneyCopy(Base):
    """Staff's zh/en copy of one journey step, in place of the copy in code (absent: the code's)."""

    __tablename__ = "journey_copies"

    journey: Mapped[str] = Column(String(60), primary_key=True)
    step: Mapped[str] = Column(String(20), primary_key=True)
    text_zh: Mapped[str] = Column(Text, nullable=False)
    text_en: Mapped[str] = Column(Text, nullable=False)
    changed_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    actor: Mapped[str] = Column(String(64), nullable=False)


class Broadcast(Base):
    """A one-off message to an audience at a time."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = Column(Integer, primary_key=True)
    code: Mapped[str] = Column(String(40), unique=True, nullable=False)
    audience: Mapped[dict] = Column(JSON, default=dict, nullable=False)
    text_zh: Mapped[str] = Column(Text, nullable=False)
    text_en: Mapped[str] = Column(Text, nullable=False)
    send_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    planned_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)


class InboxMessage(Base):
    """A web chat message for a member whose page was closed: shown at the next visit."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_member_seen", "member_id", "seen_at"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    send_id: Mapped[int] = Column(ForeignKey("outreach_sends.id"), unique=True, nullable=False)
    text: Mapped[str] = Column(Text, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    seen_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


class SendOutcome(Base):
    """What one member did in one arm of a journey within the attribution window of their latest send
    (or control moment), frozen once that window closed (loyalty/outreach/outcomes.py).

    One row per journey, member, arm and window length: a newer send of the journey replaces the
    row when its own window closes. ``start_at`` is the send's ``done_at``.
    """

    __tablename__ = "send_outcomes"
    __table_args__ = (
        UniqueConstraint("journey", "member_id", "arm", "window_days"),
        Index("ix_send_outcomes_member", "member_id", "start_at"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    journey: Mapped[str] = Column(String(60), nullable=False)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    arm: Mapped[str] = Column(String(10), nullable=False)  # treatment | control, as the report counts them
    window_days: Mapped[int] = Column(Integer, nullable=False)
    start_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    orders: Mapped[int] = Column(Integer, nullable=False)
    revenue_fen: Mapped[int] = Column(BigInteger, nullable=False)
    redemptions: Mapped[int] = Column(Integer, nullable=False)
    coupon_cost_fen: Mapped[int] = Column(BigInteger, nullable=False)
    frozen_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)


class OutcomeFreeze(Base):
    """Up to when the outcomes of a window length are frozen: every window that closed by
    ``frozen_until`` has its row (the report computes the later ones live)."""

    __tablename__ = "outcome_freezes"

    window_days: Mapped[int] = Column(Integer, primary_key=True)
    frozen_until: Mapped[datetime] = Column(UTCDateTime, nullable=False)
