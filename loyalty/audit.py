"""The audit log: who did what to which member (staff actions, consent changes), never personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, Session

from loyalty.db import Base, UTCDateTime, utcnow
from loyalty.errors import InvalidInput


class AuditEntry(Base):
    """Who did what to which member, for staff actions and consent changes. No personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = Column(Integer, primary_key=True)
    at: Mapped[datetime] = Column(UTCDateTime, default=utcnow, nullable=False)
    actor: Mapped[str] = Column(String(64), nullable=False)
    action: Mapped[str] = Column(String(40), nullable=False)
    member_id: Mapped[int | None] = Column(ForeignKey("members.id"), nullable=True, index=True)
    detail: Mapped[dict] = Column(JSON, default=dict, nullable=False)
    note: Mapped[str | None] = Column(Text, nullable=True)


def audit(
    s: Session,
    actor: str,
    action: str,
    member_id: int | None = None,
    note: str | None = None,
    **detail: Any,
) -> None:
    """Append one audit entry (never personal data in ``detail``)."""
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 64:
        raise InvalidInput("Say who acts, in at most 64 characters.", code="invalid_actor")
    s.add(AuditEntry(actor=actor, action=action, member_id=member_id, detail=detail, note=note, at=utcnow()))
