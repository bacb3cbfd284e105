"""Compiled loops of a fit: each row's best entries of a sparse or a dense matrix.

Kept apart from :mod:`loyalty.recommender.kernels`, the loops of a request, which a serving
process compiles (or loads from numba's cache) before its first request; these only run
when a model is fit.
"""

from __future__ import annotations

import numba
import numpy as np

from loyalty.recommender.kernels import _JIT, _heap_offer


@numba.jit(**_JIT)
def _emit(heap_v: np.ndarray, heap_i: np.ndarray, size: int, out_idx: np.ndarray, out_val: np.ndarray,
          start: int) -> None:
    """A row's kept entries (a heap's) written from ``start`` in column order."""
    order = np.argsort(heap_i[:size])
    for k in range(size):
        out_idx[start + k] = heap_i[order[k]]
        out_val[start + k] = heap_v[order[k]]


@numba.jit(**_JIT)
def row_top(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, first_row: int,
            row_scale: np.ndarray, col_scale: np.ndarray, shrink: float, diagonal: bool, n: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each CSR row's n highest positive scores (of equal ones, the lower column), as a CSR
    matrix's indptr, indices and float32 data with every row's columns in order.

    An entry v in row r (``first_row`` + r of the whole matrix) and column c scores
    v x row_scale[first_row + r] x col_scale[c], times v / (v + shrink) when ``shrink`` > 0 (a
    similarity damped for pairs seen a few times only); the diagonal (r == c) is left out
    unless ``diagonal``. A heap of n per row: one pass over the entries, most turned away by
    one comparison once the heap is full. (Scoring every pair of a block with NumPy and sorting
    them by row and score took most of a fit on a large catalogue: some 4e8 co-purchase pairs a
    statistics pass on The Complete Journey.)
    """
    rows = indptr.size - 1
    n = max(n, 0)
    out_ptr = np.zeros(rows + 1, dtype=np.int64)
    room = min(rows * n, indptr[rows] - indptr[0])  # never more than the entries there are
    out_idx = np.empty(room, dtype=np.int32)
    out_val = np.empty(room, dtype=np.float32)
    heap_v = np.empty(n)
    heap_i = np.empty(n, dtype=np.int64)
    for r in range(rows):
        whole = first_row + r
        size = 0
        for p in range(indptr[r], indptr[r + 1]):
            c = indices[p]
            if c == whole and not diagonal:
                continue
            v = data[p]
            score = v * row_scale[whole] * col_scale[c]
            if shrink > 0:
                score *= v / (v + shrink)
            if score > 0:
                size = _heap_offer(heap_v, heap_i, size, n, score, c)
        _emit(heap_v, heap_i, size, out_idx, out_val, out_ptr[r])
        out_ptr[r + 1] = out_ptr[r] + size
    return out_ptr, out_idx[:out_ptr[rows]].copy(), out_val[:out_ptr[rows]].copy()


@numba.jit(**_JIT)
def dense_row_top(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`row_top` of a dense matrix's rows as they are (no scaling, the diagonal kept)."""
    rows, cols = values.shape
    n = max(min(n, cols), 0)
    out_ptr = np.zeros(rows + 1, dtype=np.int64)
    out_idx = np.empty(rows * n, dtype=np.int32)
    out_val = np.empty(rows * n, dtype=np.float32)
    heap_v = np.empty(n)
    heap_i = np.empty(n, dtype=np.int64)
    for r in range(rows):
        size = 0
        for c in range(cols):
            if values[r, c] > 0:
                size = _heap_offer(heap_v, heap_i, size, n, values[r, c], c)
        _emit(heap_v, heap_i, size, out_idx, out_val, out_ptr[r])
        out_ptr[r + 1] = out_ptr[r] + size
    return out_ptr, out_idx[:out_ptr[rows]].copy(), out_val[:out_ptr[rows]].copy()
