"""Service hours of the customer-service team: are agents at work now, and when do they come back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_LOOKAHEAD_DAYS = 370  # a year of closed days still finds the next opening


def _minute(h: str, m: str, field: str) -> int:
    hh, mm = int(h), int(m)
    if not (0 <= hh <= 24 and 0 <= mm < 60) or (hh == 24 and mm):
        raise ValueError(f"{field}: {h}:{m} is not a time of day")
    return hh * 60 + mm


def _days(raw: str) -> frozenset[int]:
    out: set[int] = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"LOYALTY_SERVICE_DAYS: {part!r} is not a weekday 1-7 or a range 1-5") from None
        if not 1 <= a <= b <= 7:
            raise ValueError(f"LOYALTY_SERVICE_DAYS: {part!r} must be weekdays 1 (Monday) to 7, low to high")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError("LOYALTY_SERVICE_DAYS names no day")
    return frozenset(out)


@dataclass(frozen=True)
class ServiceHours:
    """Opening ranges (minutes after local midnight) on given weekdays, except closed dates."""

    ranges: tuple[tuple[int, int], ...]
    weekdays: frozenset[int]
    closed: frozenset[date]
    tz: ZoneInfo

    @classmethod
    def parse(cls, service_hours: str, service_days: str, service_closed_dates: str, service_tz: str) -> ServiceHours:
        """Read the settings' strings; a malformed one raises ValueError naming the variable."""
        ranges = []
        for part in service_hours.replace(" ", "").split(","):
            if not part:
                continue
            m = _RANGE.match(part)
            if not m:
                raise ValueError(f"LOYALTY_SERVICE_HOURS: {part!r} is not HH:MM-HH:MM")
            a = _minute(m.group(1), m.group(2), "LOYALTY_SERVICE_HOURS")
            b = _minute(m.group(3), m.group(4), "LOYALTY_SERVICE_HOURS")
            if a >= b:
                raise ValueError(f"LOYALTY_SERVICE_HOURS: {part!r} must end after it starts (use 24:00 for midnight)")
            ranges.append((a, b))
        if not ranges:
            raise ValueError("LOYALTY_SERVICE_HOURS names no opening hours")
        closed = set()
        for part in service_closed_dates.replace(" ", "").split(","):
            if part:
                try:
                    closed.add(date.fromisoformat(part))
                except ValueError:
                    raise ValueError(f"LOYALTY_SERVICE_CLOSED_DATES: {part!r} is not YYYY-MM-DD") from None
        try:
            tz = ZoneInfo(service_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"LOYALTY_SERVICE_TZ: unknown time zone {service_tz!r}") from None
        return cls(tuple(sorted(ranges)), _days(service_days), frozenset(closed), tz)

    def _open_day(self, d: date) -> bool:
        return d.isoweekday() in self.weekdays and d not in self.closed

    def is_open(self, at: datetime) -> bool:
        """Whether agents are at work at the aware time ``at``."""
        local = at.astimezone(self.tz)
        if not self._open_day(local.date()):
            return False
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.ranges)

    def next_opening(self, at: datetime) -> datetime | None:
        """The first moment at or after ``at`` when agents are at work (``at`` itself if open now)."""
        if self.is_open(at):
            return at
        local = at.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        for offset in range(_LOOKAHEAD_DAYS):
            d = local.date() + timedelta(days=offset)
            if not self._open_day(d):
                continue
            for a, _b in self.ranges:
                if offset == 0 and a <= minute:
                    continue
                start = datetime.combine(d, time(0, 0), tzinfo=self.tz) + timedelta(minutes=a)
                return start.astimezone(at.tzinfo)
        return None

    def describe(self) -> str:
        """The opening hours as people write them, e.g. "09:00-21:00"."""
        return ", ".join(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in self.ranges)


_WEEKDAYS_ZH = "一二三四五六日"


def say_when(at: datetime, now: datetime, language: str, tz: ZoneInfo) -> str:
    """A moment as a shopper reads it, in local time: "明天 09:00", "tomorrow at 09:00", "3月9日周一 09:00"."""
    local, today = at.astimezone(tz), now.astimezone(tz).date()
    days = (local.date() - today).days
    clock = f"{local:%H:%M}"
    if language == "en":
        if days == 0:
            return f"today at {clock}"
        if days == 1:
            return f"tomorrow at {clock}"
        return f"{local:%a} {local.day} {local:%b} at {clock}"
    if days == 0:
        return f"今天 {clock}"
    if days == 1:
        return f"明天 {clock}"
    if days == 2:
        return f"后天 {clock}"
    return f"{local.month}月{local.day}日周{_WEEKDAYS_ZH[local.weekday()]} {clock}"
