"""Purchase events in time windows: counts per item, and which items can top a window.

The events are kept as one sorted array of keys, ``item * KEY_SPAN + second``
(``ItemStats.event_key``): an item's events in a window are the keys between two
bounds, found by binary search, and the keys run item by item, then in time.
"""

from __future__ import annotations

import numpy as np

from loyalty.recommender.data import DAY

KEY_SPAN = 1 << 36  # seconds; keeps (item, time) keys unique for times before year 4000
TREND_DAYS = 30  # the window of the trending candidates and of one recent-sales feature
RECENT_DAYS = 7  # the other recent-sales feature's window


def event_keys(item: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The sorted keys of purchase events (one per item and second)."""
    return np.sort(item.astype(np.int64) * KEY_SPAN + time.astype(np.int64))


def count_events(keys: np.ndarray, items: np.ndarray, hi: int, days: float) -> np.ndarray:
    """Events of each given item in the ``days`` before second ``hi`` (float64 counts)."""
    base = items.astype(np.int64) * KEY_SPAN
    return (np.searchsorted(keys, base + hi) - np.searchsorted(keys, base + int(hi - days * DAY))).astype(np.float64)


def most(items: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """The n items with the highest counts, highest first (ties: the lower item first)."""
    return items[np.lexsort((items, -counts))[:n]]


def trend_index(keys: np.ndarray, n_items: int, last_second: float, days: int, n: int
                ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per day, the items that can be among the n most bought in a window of ``days`` days
    ending within that day (CSR-like: day d's items are ``items[indptr[d]:indptr[d + 1]]``,
    d counted from the returned first day; the days run to the one holding ``last_second``).

    Any such window holds the ``days - 1`` whole days before day d and lies within the
    ``days + 1`` days ending with d. An item whose count over the wider span is below the
    n-th highest count over the narrower one cannot be in that window's top n.
    """
    item = keys // KEY_SPAN
    day = (keys % KEY_SPAN) // int(DAY)
    if not day.size:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    first = int(day.min())
    n_days = max(int(day.max()), int(last_second) // int(DAY)) - first + 1
    # Events per (item, day): the keys run by item, then time, so equal codes are neighbours.
    code = item * n_days + (day - first)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(code)) + 1))
    count = np.diff(np.concatenate((starts, [code.size])))
    pair_item, pair_day = code[starts] // n_days, code[starts] % n_days
    by_day = np.argsort(pair_day.astype(np.int16 if n_days < 2**15 else np.int32), kind="stable")  # radix
    pair_item, count = pair_item[by_day], count[by_day]
    bounds = np.searchsorted(pair_day[by_day], np.arange(n_days + 1))

    def add(counts: np.ndarray, d: int, sign: int) -> None:
        if 0 <= d < n_days:
            lo, hi = bounds[d], bounds[d + 1]
            counts[pair_item[lo:hi]] += sign * count[lo:hi]

    inner = np.zeros(n_items, dtype=np.int64)  # days d - (days - 1) .. d - 1
    rank = max(n_items - n, 0)
    picked = []
    for d in range(n_days):
        bar = max(int(np.partition(inner, rank)[rank]) if n_items else 1, 1)
        outer = inner.copy()
        add(outer, d - days, 1)
        add(outer, d, 1)
        picked.append(np.flatnonzero(outer >= bar))
        add(inner, d, 1)
        add(inner, d - (days - 1), -1)
    indptr = np.concatenate(([0], np.cumsum([p.size for p in picked]))).astype(np.int64)
    return indptr, np.concatenate(picked).astype(np.int64), first
