"""Each member's RFM scores, segment and lifecycle stage, as last computed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime


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
