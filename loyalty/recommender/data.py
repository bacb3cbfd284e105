"""Plain-array inputs of the recommender and the per-user purchase history it keeps.

The recommender never sees the database: the service layer turns order lines
into these arrays, with dense integer indices for users and items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

DAY = 86_400.0


@dataclass(frozen=True)
class Interactions:
    """Order lines as parallel arrays, one entry per (order, item).

    ``time`` is in Unix seconds; ``basket`` identifies the order (any integer,
    unique per order). ``groups`` maps a grouping name such as ``"store"``,
    ``"city"`` or ``"segment"`` to one integer per line (-1 for unknown); it
    drives the best-seller fallback for members without a history.
    """

    user: np.ndarray
    item: np.ndarray
    time: np.ndarray
    basket: np.ndarray
    qty: np.ndarray | None = None
    groups: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.asarray(self.user).size
        for name in ("item", "time", "basket"):
            if np.asarray(getattr(self, name)).size != n:
                raise ValueError(f"interactions: {name} has a different length than user")
        if self.qty is not None and np.asarray(self.qty).size != n:
            raise ValueError("interactions: qty has a different length than user")
        for key, values in self.groups.items():
            if np.asarray(values).size != n:
                raise ValueError(f"interactions: group {key!r} has a different length than user")
        if n and (np.asarray(self.user).min() < 0 or np.asarray(self.item).min() < 0):
            raise ValueError("interactions: user and item indices must be >= 0")
        if n and not np.all(np.isfinite(np.asarray(self.time, dtype=np.float64))):
            raise ValueError("interactions: every time must be a finite number")

    def __len__(self) -> int:
        return int(np.asarray(self.user).size)


@dataclass(frozen=True)
class UserHistory:
    """One user's purchases, one entry per (order, item), oldest first."""

    item: np.ndarray
    time: np.ndarray
    basket: np.ndarray

    @property
    def empty(self) -> bool:
        return self.item.size == 0


_EMPTY = UserHistory(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int64))


class HistoryStore:
    """All users' histories in CSR form, plus orders added since training.

    Orders added after training live in a small per-user overlay, so a new
    order changes that user's recommendations at once without a refit.
    """

    def __init__(self, n_users: int, user: np.ndarray, item: np.ndarray, time: np.ndarray,
                 basket: np.ndarray) -> None:
        order = np.lexsort((basket, time, user))
        self.n_users = n_users
        self.item = np.asarray(item, dtype=np.int64)[order]
        self.time = np.asarray(time, dtype=np.float64)[order]
        self.basket = np.asarray(basket, dtype=np.int64)[order]
        self.indptr = np.searchsorted(np.asarray(user)[order], np.arange(n_users + 1))
        self._extra: dict[int, UserHistory] = {}

    @classmethod
    def from_arrays(cls, n_users: int, item: np.ndarray, time: np.ndarray, basket: np.ndarray,
                    indptr: np.ndarray) -> HistoryStore:
        """Rebuild a store from its saved CSR arrays (already sorted)."""
        if indptr.size != n_users + 1 or not item.size == time.size == basket.size == int(indptr[-1]):
            raise ValueError("history arrays do not fit together")
        store = cls.__new__(cls)
        store.n_users = n_users
        store.item, store.time, store.basket, store.indptr = item, time, basket, indptr
        store._extra = {}
        return store

    def get(self, user: int) -> UserHistory:
        """The user's full history (training part and anything added since)."""
        extra = self._extra.get(user)
        if 0 <= user < self.n_users:
            lo, hi = self.indptr[user], self.indptr[user + 1]
            base = UserHistory(self.item[lo:hi], self.time[lo:hi], self.basket[lo:hi])
        else:
            base = _EMPTY
        if extra is None:
            return base
        return UserHistory(
            np.concatenate([base.item, extra.item]),
            np.concatenate([base.time, extra.time]),
            np.concatenate([base.basket, extra.basket]),
        )

    def add(self, user: int, items: np.ndarray, time: float, basket: int) -> None:
        """Append one order; adding the same basket again is ignored (no double counting)."""
        if user < 0:
            raise ValueError("user index must be >= 0")
        current = self.get(user)
        if np.any(current.basket == basket):
            return
        items = np.unique(np.asarray(items, dtype=np.int64))
        old = self._extra.get(user, _EMPTY)
        self._extra[user] = UserHistory(
            np.concatenate([old.item, items]),
            np.concatenate([old.time, np.full(items.size, float(time))]),
            np.concatenate([old.basket, np.full(items.size, int(basket), dtype=np.int64)]),
        )

    @property
    def added(self) -> Mapping[int, UserHistory]:
        """Orders added since training, by user (saved with the model)."""
        return dict(self._extra)
