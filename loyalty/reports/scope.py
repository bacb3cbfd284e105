"""What a staff figure covers, and the small pieces every figure's module shares (so each can import them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import select

from loyalty.config import SHANGHAI
from loyalty.members.models import Member


@dataclass(frozen=True)
class Scope:
    """What a figure covers: ``[start, end)`` in UTC, one store (by id) or all, one channel or all."""

    start: datetime
    end: datetime
    store_id: int | None = None
    channel: str | None = None

    @classmethod
    def days(cls, first: date, last: date, store_id: int | None = None, channel: str | None = None) -> Scope:
        """Business days ``first`` to ``last`` (Asia/Shanghai, both included), as the staff app asks."""
        start = datetime.combine(first, time(), SHANGHAI).astimezone(timezone.utc)
        end = datetime.combine(last + timedelta(days=1), time(), SHANGHAI).astimezone(timezone.utc)
        return cls(start, end, store_id, channel)

    def of_store(self, member_col: Any) -> list[Any]:
        """The condition that ``member_col`` is a member of the scope's (home) store; none for every store."""
        if self.store_id is None:
            return []
        return [member_col.in_(select(Member.id).where(Member.store_id == self.store_id))]


def ratio(a: float, b: float) -> float | None:
    """``a / b`` to 4 places, or None when there is nothing to divide by."""
    return round(a / b, 4) if b else None


def tier_row(tier: str, orders: int, buyers: int, amount_fen: int, again30: int, again90: int) -> dict[str, Any]:
    """One row of the sales-by-tier figure from its sums (live or pre-aggregated alike)."""
    return {"tier": tier, "orders": orders, "buyers": buyers, "aov_fen": amount_fen // orders if orders else 0,
            "frequency": ratio(orders, buyers), "repurchase_30": ratio(again30, buyers),
            "repurchase_90": ratio(again90, buyers)}
