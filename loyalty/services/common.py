"""Helpers shared by the services: member locks, time, money and audit."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.config import SHANGHAI
from loyalty.db import utcnow
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.models import AuditEntry, Member

# No 0/O, 1/I/L: codes are read aloud at the till and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def now_or(now: datetime | None) -> datetime:
    """``now`` if given (tests, replays), else the current UTC time; must be aware."""
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("naive datetime")
    return now


def local_date(at: datetime) -> date:
    """The calendar date in Asia/Shanghai of an aware datetime."""
    return at.astimezone(SHANGHAI).date()


def local_midnight(d: date) -> datetime:
    """00:00 Asia/Shanghai on ``d``, as an aware datetime."""
    return datetime.combine(d, time(0, 0), tzinfo=SHANGHAI)


def random_code(length: int) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def yuan_to_fen(value: Any, field: str = "amount") -> int:
    """Parse a yuan amount ("12.5", 12.5, "12.50") into exact fen; reject junk."""
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{field} is not a number", code="invalid_amount", field=field) from None
    # The bounds come first: quantize() itself fails on huge exponents such as "1e30".
    if not d.is_finite() or d < 0 or d > Decimal("100000000") or d != d.quantize(Decimal("0.01")):
        raise InvalidInput(
            f"{field} must be a non-negative amount with at most 2 decimals",
            code="invalid_amount",
            field=field,
        )
    return int((d * 100).to_integral_value(ROUND_HALF_UP))


def fen_to_yuan(fen: int) -> str:
    """Fen as a yuan string with two decimals ("12.50")."""
    return f"{Decimal(fen) / 100:.2f}"


def lock_member(s: Session, member_id: int, *, allow_closed: bool = False) -> Member:
    """Load a member and lock its row for the rest of the transaction.

    Every operation that changes a member's points or coupons takes this
    lock first, so their writes never interleave (PostgreSQL row lock;
    SQLite serialises writers with BEGIN IMMEDIATE anyway).
    """
    if not isinstance(member_id, int) or isinstance(member_id, bool):
        raise NotFound("No such member.", code="member_not_found")
    # populate_existing: a Member read earlier in this transaction (before we waited for
    # the lock) must be overwritten with what the previous lock holder committed.
    member = s.execute(
        select(Member)
        .where(Member.id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if member is None:
        raise NotFound("No such member.", code="member_not_found")
    if member.status != "active" and not allow_closed:
        raise Refused("This account is closed.", code="member_closed")
    return member


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


def days(n: int) -> timedelta:
    return timedelta(days=n)
