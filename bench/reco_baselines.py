"""The methods a data team would otherwise pick, behind one small interface.

Every method is fit on the training lines of a split and then asked, one user
at a time, for a ranked list; ``exclude`` holds the items that must not be
shown (the user's past items in "new" mode).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from bench.reco_data import Transactions


class Method(Protocol):
    """What the harness needs from a recommender under test."""

    name: str

    def fit(self, train: Transactions) -> None:
        """Learn from the training lines."""

    def recommend(self, user: int, k: int, exclude: np.ndarray | None, now: int) -> np.ndarray:
        """Item indices, best first; ``now`` is the request time in Unix seconds."""

    def release(self) -> None:
        """Forget the fit (the harness calls it once a split is scored)."""


class Fitted:
    """A method whose fit lives in attributes named with a leading underscore."""

    def release(self) -> None:
        """Drop the fit, so that the next split's is not learned while this one is still held
        (a chain-sized model's history and statistics run to gigabytes)."""
        for name in [n for n in vars(self) if n.startswith("_")]:
            delattr(self, name)


def basket_counts(train: Transactions) -> sp.csr_matrix:
    """Users x items, the number of baskets in which the user bought the item."""
    m = sp.csr_matrix(
        (np.ones(train.user.size), (train.user, train.item)),
        shape=(train.n_users, train.n_items),
    )
    m.sum_duplicates()
    return m


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    """Indices of the k highest scores, best first, never an excluded index."""
    if exclude is not None and exclude.size:
        scores = scores.copy()
        scores[exclude] = -np.inf
    k = min(k, scores.size)
    part = np.argpartition(-scores, k - 1)[:k]
    part = part[np.argsort(-scores[part], kind="stable")]
    return part[np.isfinite(scores[part])]


def popularity_tiebreak(counts: sp.csr_matrix) -> np.ndarray:
    """Distinct buyers per item scaled into [0, 1): adds order without outranking a real score."""
    buyers = np.asarray((counts > 0).sum(axis=0)).ravel().astype(np.float64)
    return buyers / (buyers.max() + 1.0)


class Popularity(Fitted):
    """Items with the most distinct buyers, the same list for everyone."""

    name = "popularity"

    def fit(self, train: Transactions) -> None:
        self._pop = popularity_tiebreak(basket_counts(train))

    def recommend(self, user: int, k: int, exclude: np.ndarray | None, now: int) -> np.ndarray:
        return top_k(self._pop, k, exclude)


class BuyAgain(Fitted):
    """The user's own most often bought items, popularity to fill the list."""

    name = "buy-again"

    def fit(self, train: Transactions) -> None:
        self._counts = basket_counts(train)
        self._pop = popularity_tiebreak(self._counts)

    def recommend(self, user: int, k: int, exclude: np.ndarray | None, now: int) -> np.ndarray:
        scores = self._pop.copy()
        row = self._counts[user]
        scores[row.indices] += row.data  # a count >= 1 always outranks the [0, 1) fill
        return top_k(scores, k, exclude)


class ItemKNN(Fitted):
    """Item-item cosine on the binary user x item matrix, top neighbours per item."""

    name = "item-kNN cosine"

    def __init__(self, neighbours: int = 100) -> None:
        self.neighbours = neighbours

    def fit(self, train: Transactions) -> None:
        from loyalty.recommender.stats import cosine_neighbours  # block-wise, so chain-sized data fits

        counts = basket_counts(train)
        x = (counts > 0).astype(np.float32).tocsr()
        # The diagonal (an item is its own best neighbour) stays: it lets kNN re-suggest
        # what the user bought, which makes it a fair competitor in "all" mode.
        self._sim = cosine_neighbours(x, self.neighbours, diagonal=True)
        self._x = x
        self._pop = popularity_tiebreak(counts) * 1e-6  # only orders items with no CF score

    def recommend(self, user: int, k: int, exclude: np.ndarray | None, now: int) -> np.ndarray:
        row = self._x[user]
        scores = np.asarray(self._sim[row.indices].sum(axis=0)).ravel() + self._pop
        return top_k(scores, k, exclude)


class ImplicitALS(Fitted):
    """implicit's ALS on basket counts (a benchmark-only dependency)."""

    name = "implicit ALS"

    def __init__(
        self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
        iterations: int = 15, threads: int = 2,
    ) -> None:
        self.params = dict(
            factors=factors, regularization=regularization, alpha=alpha,
            iterations=iterations, num_threads=threads, random_state=42,
        )

    def fit(self, train: Transactions) -> None:
        try:
            from implicit.cpu.als import AlternatingLeastSquares  # benchmark-only dependency
        except ImportError:
            raise SystemExit("the ALS baseline needs implicit: run `make bench` once "
                             "(or leave it out with --methods)") from None

        self._items = basket_counts(train).astype(np.float32)
        self._items.data = np.log1p(self._items.data)  # damp heavy re-buyers
        from threadpoolctl import threadpool_limits

        self._model = AlternatingLeastSquares(**self.params)
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, not BLAS's
            self._model.fit(self._items, show_progress=False)

    def recommend(self, user: int, k: int, exclude: np.ndarray | None, now: int) -> np.ndarray:
        ids, _ = self._model.recommend(
            user, self._items[user], N=k, filter_already_liked_items=False,
            filter_items=exclude if exclude is not None and exclude.size else None,
        )
        return np.asarray(ids)
