"""Members, the channel identities (WeChat openid, web chat visitor) that lead to them, and their segment profile."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, relationship
from sqlalchemy.sql.expression import false

from loyalty.catalogue.models import Store
from loyalty.db import Base, UTCDateTime, utcnow


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (CheckConstraint("points_balance >= 0", name="balance_not_negative"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    # NULL once the account is closed, so the number can join again.
    phone: Mapped[str | None] = Column(String(20), unique=True, nullable=True)
    name: Mapped[str | None] = Column(String(100), nullable=True)
    birthday: Mapped[date | None] = Column(Date, nullable=True)
    referral_code: Mapped[str] = Column(String(16), unique=True, nullable=False)
    referred_by_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True)
    store_id: Mapped[int | None] = Column(ForeignKey("stores.id"), nullable=True)
    join_channel: Mapped[str | None] = Column(String(20), nullable=True)
    tier: Mapped[str] = Column(String(20), default="normal", nullable=False)
    tier_reviewed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    points_balance: Mapped[int] = Column(BigInteger, default=0, nullable=False)
    consent_version: Mapped[str | None] = Column(String(20), nullable=True)
    consent_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    marketing_opt_in: Mapped[bool] = Column(Boolean, default=True, nullable=False)
    # Consent to marketing by SMS (off unless the member said yes); service notices follow marketing_opt_in.
    sms_opt_in: Mapped[bool] = Column(Boolean, default=False, server_default=false(), nullable=False)
    # The language the member chats in ("zh" or "en"): outreach copy goes in it.
    language: Mapped[str] = Column(String(5), default="zh", server_default="zh", nullable=False)
    status: Mapped[str] = Column(String(10), default="active", nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    closed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)

    store: Mapped[Store | None] = relationship(Store)


class ChannelIdentity(Base):
    """A member's address on one channel: a WeChat openid, a web chat visitor id."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    channel: Mapped[str] = Column(String(20), nullable=False)
    external_id: Mapped[str] = Column(String(128), index=True, nullable=False)
    # WeChat only: the shopper's UnionID, the same across the brand's official accounts and mini programs.
    union_id: Mapped[str | None] = Column(String(128), index=True, nullable=True)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)


class MemberSegment(Base):
    """The latest RFM scores, segment, lifecycle stage and tags of a member."""

    __tablename__ = "member_segments"

    member_id: Mapped[int] = Column(ForeignKey("members.id"), primary_key=True)
    recency: Mapped[int] = Column(Integer, nullable=False)
    frequency: Mapped[int] = Column(Integer, nullable=False)
    monetary: Mapped[int] = Column(Integer, nullable=False)
    segment: Mapped[str] = Column(String(30), index=True, nullable=False)
    lifecycle: Mapped[str] = Column(String(20), nullable=False)
    tags: Mapped[list] = Column(JSON, default=list, nullable=False)
    as_of: Mapped[datetime] = Column(UTCDateTime, nullable=False)


class SegmentMove(Base):
    """One change of a member's lifecycle stage or RFM segment by a segment run (append-only).

    ``from_value`` is NULL for the member's first assignment. A run is known
    by its ``as_of``: the same run done again (a retry) adds no second row.
    """

    __tablename__ = "segment_moves"
    __table_args__ = (
        UniqueConstraint("member_id", "dimension", "run_at"),
        CheckConstraint("dimension IN ('lifecycle', 'rfm')", name="known_dimension"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    dimension: Mapped[str] = Column(String(10), nullable=False)
    from_value: Mapped[str | None] = Column(String(30), nullable=True)
    to_value: Mapped[str] = Column(String(30), nullable=False)
    run_at: Mapped[datetime] = Column(UTCDateTime, index=True, nullable=False)
