"""One row per arrival through a store's QR code or link: which store, which channel, what kind, who (hashed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime


class QrVisit(Base):
    """A WeChat scan of a store's code (``scan``), a follow through it (``follow``) or the web chat opened
    with the store's link (``page_open``).

    The visitor is kept only as a keyed hash of the channel address (never the
    openid); ``visit_key`` is a keyed hash of the bot message that carried the
    visit, so a retried action counts it once.
    """

    __tablename__ = "qr_visits"
    __table_args__ = (
        CheckConstraint("kind IN ('scan', 'follow', 'page_open')", name="kind"),
        Index("ix_qr_visits_occurred", "occurred_at"),
        Index("ix_qr_visits_store_occurred", "store_id", "occurred_at"),
        Index("ix_qr_visits_visitor", "visitor_key"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    store_id: Mapped[int] = Column(ForeignKey("stores.id"), nullable=False)
    channel: Mapped[str] = Column(String(20), nullable=False)
    kind: Mapped[str] = Column(String(10), nullable=False)
    visitor_key: Mapped[str] = Column(String(64), nullable=False)
    visit_key: Mapped[str] = Column(String(64), unique=True, nullable=False)
    occurred_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
