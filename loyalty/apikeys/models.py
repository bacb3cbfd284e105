"""API keys of the tills and the web shop (only a hash is kept)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow


class ApiClient(Base):
    """A till or web shop allowed to call the HTTP API; only a hash of its key is kept."""

    __tablename__ = "api_clients"

    id: Mapped[int] = Column(Integer, primary_key=True)
    source: Mapped[str] = Column(String(32), unique=True, nullable=False)
    key_hash: Mapped[str] = Column(String(64), unique=True, nullable=False)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
