"""Orders and returns from the tills and the web shop, line by line.

Money is kept in integer fen (1 yuan = 100 fen) so it stays exact on every database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, relationship

from loyalty.db import Base, UTCDateTime, utcnow


class Order(Base):
    """A purchase or a return posted by a till or the web shop."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_orders_member_placed", "member_id", "placed_at"),
        # A redeemed coupon names its order by the till's id alone (the dashboard's coupon revenue).
        Index("ix_orders_external_id", "external_id"),
        # Orders posted since the last outcome freeze (loyalty/outreach/outcomes.py: back-dated ones).
        Index("ix_orders_created_at", "created_at"),
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
