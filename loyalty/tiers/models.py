"""The history of each member's tier."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime


class TierChange(Base):
    __tablename__ = "tier_changes"

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), index=True, nullable=False)
    from_tier: Mapped[str] = Column(String(20), nullable=False)
    to_tier: Mapped[str] = Column(String(20), nullable=False)
    reason: Mapped[str] = Column(String(20), nullable=False)  # upgrade | review
    growth: Mapped[int] = Column(BigInteger, nullable=False)
    changed_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
