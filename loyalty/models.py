"""SQLAlchemy models of the loyalty core.

Money is kept in integer fen (1 yuan = 100 fen) so it stays exact on every
database. The points ledger is append-only; lots hold what is left of each
earning and expire one by one. ``Member.points_balance`` is a guarded
running total, always equal to the sum of live lots and of the ledger.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, declarative_base, relationship

from loyalty.db import UTCDateTime, utcnow

Base: Any = declarative_base()

# Naming convention so that Alembic migrations name constraints identically
# on SQLite (batch mode) and PostgreSQL.
Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = Column(Integer, primary_key=True)
    code: Mapped[str] = Column(String(32), unique=True, nullable=False)
    name_zh: Mapped[str] = Column(String(100), nullable=False)
    name_en: Mapped[str] = Column(String(100), nullable=False)
    city: Mapped[str] = Column(String(50), nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = Column(Integer, primary_key=True)
    sku: Mapped[str] = Column(String(64), unique=True, nullable=False)
    name_zh: Mapped[str] = Column(String(200), nullable=False)
    name_en: Mapped[str] = Column(String(200), nullable=False)
    category: Mapped[str] = Column(String(50), index=True, nullable=False)
    price_fen: Mapped[int] = Column(Integer, nullable=False)
    stock: Mapped[int] = Column(Integer, default=0, nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)


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
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)


class Order(Base):
    """A purchase or a return posted by a till or the web shop."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_orders_member_placed", "member_id", "placed_at"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    source: Mapped[str] = Column(String(32), nullable=False)
    external_id: Mapped[str] = Column(String(64), nullable=False)
    kind: Mapped[str] = Column(String(10), default="order", nullable=False)  # order | return
    original_id: Mapped[int | None] = Column(ForeignKey("orders.id"), nullable=True)
    member_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True)
    store_id: Mapped[int | None] = Column(ForeignKey("stores.id"), nullable=True)
    channel: Mapped[str] = Column(String(10), default="pos", nullable=False)  # pos | online
    placed_at: Mapped[datetime] = Column(UTCDateTime, index=True, nullable=False)
    amount_fen: Mapped[int] = Column(BigInteger, nullable=False)
    points: Mapped[int] = Column(BigInteger, default=0, nullable=False)  # earned, or clawed back by a return
    payload_hash: Mapped[str] = Column(String(64), nullable=False)
    result: Mapped[dict] = Column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)

    lines: Mapped[list[OrderLine]] = relationship("OrderLine", back_populates="order")


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = Column(Integer, primary_key=True)
    order_id: Mapped[int] = Column(ForeignKey("orders.id"), index=True, nullable=False)
    product_id: Mapped[int | None] = Column(ForeignKey("products.id"), nullable=True, index=True)
    sku: Mapped[str] = Column(String(64), nullable=False)
    qty: Mapped[int] = Column(Integer, nullable=False)
    unit_price_fen: Mapped[int] = Column(Integer, nullable=False)

    order: Mapped[Order] = relationship(Order, back_populates="lines")


class LedgerEntry(Base):
    """One change of a member's points. Rows are only ever inserted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_member_id", "member_id", "id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    # earn | spend | expire | clawback | adjust | referral | close
    kind: Mapped[str] = Column(String(12), nullable=False)
    delta: Mapped[int] = Column(BigInteger, nullable=False)
    balance_after: Mapped[int] = Column(BigInteger, nullable=False)
    # Growth value (yuan) this entry adds to the tier window: purchases add, returns remove.
    growth: Mapped[int] = Column(BigInteger, default=0, nullable=False)
    # Points a clawback could not take because they were already spent.
    shortfall: Mapped[int] = Column(BigInteger, default=0, nullable=False)
    order_id: Mapped[int | None] = Column(ForeignKey("orders.id"), nullable=True)
    idem_key: Mapped[str | None] = Column(String(120), unique=True, nullable=True)
    reason: Mapped[str | None] = Column(String(200), nullable=True)
    actor: Mapped[str | None] = Column(String(64), nullable=True)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)


class PointsLot(Base):
    """What is left of one earning; spent earliest-expiring first."""

    __tablename__ = "points_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0", name="remaining_not_negative"),
        CheckConstraint("remaining <= amount", name="remaining_within_amount"),
        Index("ix_lots_member_expiry", "member_id", "expires_at", "id"),
        Index("ix_lots_expiry", "expires_at"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    entry_id: Mapped[int] = Column(ForeignKey("ledger_entries.id"), nullable=False)
    order_id: Mapped[int | None] = Column(ForeignKey("orders.id"), nullable=True)
    amount: Mapped[int] = Column(BigInteger, nullable=False)
    remaining: Mapped[int] = Column(BigInteger, nullable=False)
    earned_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)


class TierChange(Base):
    __tablename__ = "tier_changes"

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    from_tier: Mapped[str] = Column(String(20), nullable=False)
    to_tier: Mapped[str] = Column(String(20), nullable=False)
    reason: Mapped[str] = Column(String(20), nullable=False)  # upgrade | review
    growth: Mapped[int] = Column(BigInteger, nullable=False)
    changed_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)


class CouponCampaign(Base):
    __tablename__ = "coupon_campaigns"
    __table_args__ = (
        CheckConstraint("total_stock IS NULL OR issued <= total_stock", name="issued_within_stock"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    code: Mapped[str] = Column(String(40), unique=True, nullable=False)
    name_zh: Mapped[str] = Column(String(100), nullable=False)
    name_en: Mapped[str] = Column(String(100), nullable=False)
    kind: Mapped[str] = Column(String(10), nullable=False)  # threshold (满减) | percent (折扣) | gift (兑换)
    threshold_fen: Mapped[int] = Column(Integer, default=0, nullable=False)
    discount_fen: Mapped[int] = Column(Integer, default=0, nullable=False)
    percent_off: Mapped[int] = Column(Integer, default=0, nullable=False)
    gift_sku: Mapped[str | None] = Column(String(64), nullable=True)
    total_stock: Mapped[int | None] = Column(Integer, nullable=True)  # None: unlimited
    issued: Mapped[int] = Column(Integer, default=0, nullable=False)
    per_member_limit: Mapped[int] = Column(Integer, default=1, nullable=False)
    claim_start: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    claim_end: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    valid_from: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    valid_until: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    valid_days: Mapped[int | None] = Column(Integer, nullable=True)
    points_cost: Mapped[int] = Column(Integer, default=0, nullable=False)
    min_tier: Mapped[str | None] = Column(String(20), nullable=True)
    target_segment: Mapped[str | None] = Column(String(30), nullable=True)
    # public: listed to shoppers; welcome / birthday / referral / goodwill: granted only
    audience: Mapped[str] = Column(String(12), default="public", nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)


class CouponHolding(Base):
    """How many coupons of a campaign a member holds: the per-member limit's guard row."""

    __tablename__ = "coupon_holdings"
    __table_args__ = (UniqueConstraint("member_id", "campaign_id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    campaign_id: Mapped[int] = Column(ForeignKey("coupon_campaigns.id"), nullable=False)
    count: Mapped[int] = Column(Integer, default=0, nullable=False)


class Coupon(Base):
    """One coupon a member claimed (or was given); its code is redeemed at the till once."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("member_id", "request_key"),
        Index("ix_coupons_member_status", "member_id", "status"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    code: Mapped[str] = Column(String(20), unique=True, nullable=False)
    campaign_id: Mapped[int] = Column(ForeignKey("coupon_campaigns.id"), index=True, nullable=False)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    request_key: Mapped[str] = Column(String(120), nullable=False)
    status: Mapped[str] = Column(String(10), default="active", nullable=False)  # active | redeemed | void
    claimed_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    valid_from: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    valid_until: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    points_spent: Mapped[int] = Column(Integer, default=0, nullable=False)
    redeemed_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
    redeemed_ref: Mapped[str | None] = Column(String(100), nullable=True)
    redeemed_store_id: Mapped[int | None] = Column(ForeignKey("stores.id"), nullable=True)

    campaign: Mapped[CouponCampaign] = relationship(CouponCampaign)


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (CheckConstraint("referrer_id <> referee_id", name="no_self_referral"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    referrer_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    referee_id: Mapped[int] = Column(ForeignKey("members.id"), unique=True, nullable=False)
    status: Mapped[str] = Column(String(10), default="pending", nullable=False)  # pending | rewarded
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    rewarded_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)


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


class ApiClient(Base):
    """A till or web shop allowed to call the HTTP API; only a hash of its key is kept."""

    __tablename__ = "api_clients"

    id: Mapped[int] = Column(Integer, primary_key=True)
    source: Mapped[str] = Column(String(32), unique=True, nullable=False)
    key_hash: Mapped[str] = Column(String(64), unique=True, nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)


class AuditEntry(Base):
    """Who did what to which member, for staff actions and consent changes. No personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = Column(Integer, primary_key=True)
    at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    actor: Mapped[str] = Column(String(64), nullable=False)
    action: Mapped[str] = Column(String(40), nullable=False)
    member_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True, index=True)
    detail: Mapped[dict] = Column(JSON, default=dict, nullable=False)
    note: Mapped[str | None] = Column(Text, nullable=True)
