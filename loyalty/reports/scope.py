"""What a staff figure covers; its own module so every figure's module can import it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Scope:
    """What a figure covers: ``[start, end)`` in UTC, one store (by id) or all, one channel or all."""

    start: datetime
    end: datetime
    store_id: int | None = None
    channel: str | None = None
