"""Pre-aggregated dashboard tables: the sales cells and points days, rebuilt by :mod:`loyalty.reports.rollup`.

Nothing here is a source of truth: each table is a function of the orders,
members and points ledger at the moment of its last rebuild, written in one
transaction with its row in ``report_rollups`` (when, how long it took).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, String
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime


class SalesCell(Base):
    """Member orders of one business day, grouped by the day of the member's previous order.

    ``part`` says what a member's order history is split by: ``all`` (one
    history a member) or ``channel`` (one a member and order channel, the
    dashboard's channel filter). Orders placed at the same moment by the same
    member count as one *moment*. For every moment: ``prev_day`` is the day of
    the member's previous moment (none for the first), ``again30`` / ``again90``
    whether their next moment came within 30 / 90 days. A range's buyers are
    then the moments in the range whose previous moment is before it, one a
    buyer, and their repurchase the same moments' flags: sums, whatever the range.
    """

    __tablename__ = "report_sales_cells"
    __table_args__ = (
        CheckConstraint("part IN ('all', 'channel')", name="known_part"),
        Index("ix_report_sales_cells_part_day", "part", "channel", "day"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    part: Mapped[str] = Column(String(10), nullable=False)
    channel: Mapped[str] = Column(String(10), nullable=False)  # '' for part 'all'
    tier: Mapped[str] = Column(String(20), nullable=False)  # the member's tier at the rebuild
    day: Mapped[str] = Column(String(10), nullable=False)  # YYYY-MM-DD, Asia/Shanghai
    prev_day: Mapped[str | None] = Column(String(10), nullable=True)
    orders: Mapped[int] = Column(Integer, nullable=False)
    amount_fen: Mapped[int] = Column(BigInteger, nullable=False)
    moments: Mapped[int] = Column(Integer, nullable=False)
    again30: Mapped[int] = Column(Integer, nullable=False)
    again90: Mapped[int] = Column(Integer, nullable=False)


class PointsDay(Base):
    """Points issued, spent and expired on one business day, by the member's home store (0: none)."""

    __tablename__ = "report_points_days"
    __table_args__ = (Index("ix_report_points_days_day", "day", "store_id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    day: Mapped[str] = Column(String(10), nullable=False)
    store_id: Mapped[int] = Column(Integer, nullable=False)
    issued: Mapped[int] = Column(BigInteger, nullable=False)
    spent: Mapped[int] = Column(BigInteger, nullable=False)
    expired: Mapped[int] = Column(BigInteger, nullable=False)


class CouponDay(Base):
    """Coupons of one campaign claimed on one business day by members of one home store (0: none):
    how many, how many of them are redeemed by now, and the amount of the orders that redeemed them."""

    __tablename__ = "report_coupon_days"
    __table_args__ = (Index("ix_report_coupon_days_day", "day", "store_id"),)

    id: Mapped[int] = Column(Integer, primary_key=True)
    day: Mapped[str] = Column(String(10), nullable=False)
    campaign_id: Mapped[int] = Column(Integer, nullable=False)
    store_id: Mapped[int] = Column(Integer, nullable=False)
    claimed: Mapped[int] = Column(Integer, nullable=False)
    redeemed: Mapped[int] = Column(Integer, nullable=False)
    revenue_fen: Mapped[int] = Column(BigInteger, nullable=False)


class Rollup(Base):
    """When the pre-aggregated tables were last rebuilt (one row, ``name`` 'dashboard')."""

    __tablename__ = "report_rollups"

    name: Mapped[str] = Column(String(20), primary_key=True)
    as_of: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    took_ms: Mapped[int] = Column(Integer, nullable=False)
    rows: Mapped[int] = Column(Integer, nullable=False)
