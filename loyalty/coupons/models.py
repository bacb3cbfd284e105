"""Coupon campaigns, what each member holds of them, and the coupons themselves.

Money is kept in integer fen (1 yuan = 100 fen) so it stays exact on every database.
"""

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, relationship

from loyalty.db import Base, UTCDateTime, utcnow


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
        Index("ix_coupons_claimed_at", "claimed_at"),
        # The redemptions of the last days (the journeys report's open attribution windows).
        Index("ix_coupons_redeemed_at", "redeemed_at"),
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
