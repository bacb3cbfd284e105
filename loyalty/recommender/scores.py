"""A request's collaborative scores over the whole catalogue, on one thread's score sheet.

A request adds a few hundred rows of the item-item matrices, and its similar members' rows,
into one score per item of the catalogue, but reaches only a few per cent of the items (2% on
the 1M-member chain's longest histories). The sheet keeps a dense array per score that is all
zero between requests and notes the cells each score reached: the best items are picked among
those cells, and zeroing them again is the whole reset. Fresh arrays cost a pass over the
catalogue each to zero and another to pick the best from.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from loyalty.recommender.kernels import spread_touched, top_touched

_NO_WEIGHTS = np.zeros(0)


class ScoreSheet:
    """``n_scores`` dense scores over ``n_items`` items for one thread's requests.

    Use: :meth:`add` rows into scores, read ``values[score]`` and :meth:`top`, then
    :meth:`clear` (always, e.g. in a ``finally``) before the next request.
    """

    def __init__(self, n_items: int, n_scores: int) -> None:
        self.values = np.zeros((n_scores, n_items))
        self._touched = np.empty((n_scores, n_items), dtype=np.int32)
        self._count = np.zeros(n_scores, dtype=np.int64)
        self._seen = np.zeros((n_scores, n_items // 64 + 1), dtype=np.uint64)

    def add(self, m: sp.csr_matrix, rows: np.ndarray, score: int, weights: np.ndarray,
            second: tuple[int, np.ndarray] | None = None) -> None:
        """Add ``weights @ m[rows]`` (one weight per row) to the score; ``second`` = (score, its
        weights) adds another weighting of the same rows, in the same read, to a second score
        (both still empty)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= m.shape[0]):  # the loop would not check
            raise IndexError(f"row out of range for a matrix of {m.shape[0]} rows")
        if m.shape[1] != self.values.shape[1]:
            raise ValueError(f"a matrix of {m.shape[1]} columns on a sheet of {self.values.shape[1]} items")
        w0 = np.ascontiguousarray(weights, dtype=np.float64)
        other, w1 = second if second is not None else (score, _NO_WEIGHTS)
        w1 = np.ascontiguousarray(w1, dtype=np.float64)
        if w0.size != rows.size or (second is not None and w1.size != rows.size):
            raise ValueError("one weight per row")
        if second is not None and (other == score or self._count[score] or self._count[other]):
            raise ValueError("two weightings go into two scores that are still empty")
        self._count[score] = spread_touched(m.indptr, m.indices, m.data, rows, w0, w1, self.values[score],
                                            self.values[other], self._seen[score], self._touched[score],
                                            int(self._count[score]))
        if second is not None:  # the same cells
            n = int(self._count[score])
            self._touched[other, :n] = self._touched[score, :n]
            self._seen[other] = self._seen[score]
            self._count[other] = n

    def top(self, score: int, n: int) -> np.ndarray:
        """The n items with the highest positive values of the score (any order)."""
        return top_touched(self.values[score], self._touched[score, :self._count[score]], int(n))

    def clear(self) -> None:
        """All scores back to zero, touching only the cells that were reached."""
        for s in np.flatnonzero(self._count):
            self.values[s, self._touched[s, :self._count[s]]] = 0.0
            self._seen[s] = 0
            self._count[s] = 0
