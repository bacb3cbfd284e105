"""The rules every send obeys, as small pure functions: holdout, quiet hours, frequency cap window."""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta

from loyalty.common import local_date
from loyalty.config import SHANGHAI


def in_control(member_id: int, journey: str, percent: float) -> bool:
    """The holdout: a deterministic hash of member and journey, the same on every run and process."""
    digest = hashlib.sha256(f"{journey}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent


def quiet(at: datetime, start: int, end: int) -> bool:
    """Whether ``at`` falls in the quiet hours (local Asia/Shanghai), e.g. 21:00–09:00."""
    hour = at.astimezone(SHANGHAI).hour
    return hour >= start or hour < end if start > end else start <= hour < end


def hold(at: datetime, start: int, end: int) -> datetime:
    """``at``, or the end of the quiet hours it falls in (the next 09:00 local)."""
    if not quiet(at, start, end):
        return at
    day = local_date(at)
    if at.astimezone(SHANGHAI).hour >= start > end:
        day += timedelta(days=1)
    return datetime.combine(day, time(end, 0), tzinfo=SHANGHAI)
