"""Who brought whom in, and whether both were rewarded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (CheckConstraint("referrer_id <> referee_id", name="no_self_referral"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    referrer_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    referee_id: Mapped[int] = Column(ForeignKey("members.id"), unique=True, nullable=False)
    status: Mapped[str] = Column(String(10), default="pending", nullable=False)  # pending | rewarded
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    rewarded_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
