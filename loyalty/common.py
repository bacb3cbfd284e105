"""Helpers every domain shares: time in Asia/Shanghai, money in fen, codes, per-transaction caches."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from loyalty.config import SHANGHAI
from loyalty.db import utcnow
from loyalty.errors import InvalidInput

# No 0/O, 1/I/L: codes are read aloud at the till and typed on phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"



def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits: what ``int()`` reads for a whole number a
    caller may send ("²" is a digit to ``str.isdigit`` and an error to ``int``)."""
    return text.isascii() and text.isdigit()


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


def parse_rating(score: object) -> int:
    """A shopper's 1-5 score ("5", 5, " 4 ") as a whole number; anything else is refused."""
    if isinstance(score, bool):
        raise InvalidInput("A score is a whole number from 1 to 5.", code="invalid_rating")
    try:
        value = int(str(score).strip())
    except ValueError:
        value = 0
    if not 1 <= value <= 5:
        raise InvalidInput("A score is a whole number from 1 to 5.", code="invalid_rating")
    return value


def days(n: int) -> timedelta:
    return timedelta(days=n)


def txn_cache(s: Session, name: str, *, innermost: bool = False) -> dict[Any, Any]:
    """A dict that lives as long as the session's current transaction (or, with
    ``innermost``, its innermost savepoint): a rollback or a commit leaves it behind."""
    txn = (s.get_nested_transaction() if innermost else None) or s.get_transaction()
    slot = s.info.get(name)
    if slot is None or slot[0] is not txn:
        slot = s.info[name] = (txn, {})
    return slot[1]


def note_balance(s: Session, member_id: int, balance: int) -> None:
    """Remember a member's balance, read or written under the member's row lock.

    Nobody else can change the row before this transaction ends, so a balance
    change can compute the new value instead of reading it back. The note
    belongs to the innermost savepoint: once that ends (released, rolled back)
    the next change reads the row again.
    """
    txn_cache(s, "loyalty.balances", innermost=True)[member_id] = balance


def known_balance(s: Session, member_id: int) -> int | None:
    """The balance :func:`note_balance` kept in this very savepoint or transaction, if any."""
    return txn_cache(s, "loyalty.balances", innermost=True).get(member_id)

