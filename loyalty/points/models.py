"""The points ledger (append-only) and the lots that expire one by one.

``Member.points_balance`` is a guarded running total, always equal to the sum of
live lots and of the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow


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
        # Lots still holding points, by expiry: the expiry job and the points liability read only these.
        Index("ix_lots_open_expiry", "expires_at", postgresql_where=text("remaining > 0"),
              sqlite_where=text("remaining > 0")),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    member_id: Mapped[int] = Column(ForeignKey("members.id"), nullable=False)
    entry_id: Mapped[int] = Column(ForeignKey("ledger_entries.id"), nullable=False)
    order_id: Mapped[int | None] = Column(ForeignKey("orders.id"), nullable=True)
    amount: Mapped[int] = Column(BigInteger, nullable=False)
    remaining: Mapped[int] = Column(BigInteger, nullable=False)
    earned_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = Column(UTCDateTime, nullable=False)
