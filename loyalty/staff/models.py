"""The staff app's accounts, on the core's metadata so one migration chain covers all."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped

from loyalty.db import Base, UTCDateTime, utcnow

ROLES = ("marketing", "store_manager", "supervisor")


class StaffAccount(Base):
    """Someone from marketing or a store who reads the numbers and runs campaigns in the staff app.

    A store manager has a store and sees only that store's numbers; the
    other roles see every store.
    """

    __tablename__ = "staff_accounts"
    __table_args__ = (
        CheckConstraint("role IN ('marketing', 'store_manager', 'supervisor')", name="known_role"),
        CheckConstraint("(role = 'store_manager') = (store_id IS NOT NULL)", name="manager_has_store"),
    )

    id: Mapped[int] = Column(Integer, primary_key=True)
    username: Mapped[str] = Column(String(32), unique=True, nullable=False)
    display_name: Mapped[str] = Column(String(50), nullable=False)
    password_hash: Mapped[str] = Column(String(255), nullable=False)  # argon2id
    role: Mapped[str] = Column(String(16), nullable=False)
    store_id: Mapped[int | None] = Column(ForeignKey("stores.id"), nullable=True)
    active: Mapped[bool] = Column(Boolean, default=True, nullable=False)
    # Bumped on password change, deactivation or logout: older session cookies stop working.
    session_version: Mapped[int] = Column(Integer, default=1, nullable=False)
    created_at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    last_login_at: Mapped[datetime | None] = Column(UTCDateTime, nullable=True)
