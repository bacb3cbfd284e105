"""Compiled loops for the parts of a request that NumPy would take dozens of small calls for.

A request's time was the sum of some three hundred NumPy calls of a few microseconds each
(docs/recommender.md, eleventh pass); these loops do the same work in one call each.
numba compiles a function on its first use and keeps the machine code beside this file
(``cache=True``), so a process pays for the compilation once per machine, not per request;
:func:`warm_up` compiles them all when a model is loaded. ``nogil``: a serving process's
threads run them side by side.
"""

from __future__ import annotations

import numba
import numpy as np

# error_model "numpy": a division by zero gives inf or nan, as NumPy's would, rather than raising.
_JIT = {"cache": True, "nogil": True, "nopython": True, "error_model": "numpy"}


@numba.jit(**_JIT)
def tree_scores(x: np.ndarray, roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                children: np.ndarray, value: np.ndarray, depth: int, bias: float) -> np.ndarray:
    """Per row of x, bias + the leaf value each tree sends it to.

    ``children[2 * node + 1]`` is the left child (taken when x[feature] <= threshold),
    ``children[2 * node]`` the right one; a leaf is its own child.
    """
    out = np.empty(x.shape[0])
    for r in range(x.shape[0]):
        total = bias
        for t in range(roots.size):
            node = roots[t]
            for _ in range(depth):
                node = children[2 * node + (1 if x[r, feature[node]] <= threshold[node] else 0)]
            total += value[node]
        out[r] = total
    return out



@numba.jit(**_JIT)
def sparse_spread(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray,
                  weights: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """weights @ m[rows] for a CSR matrix m given by its arrays, kept sparse: the columns the
    rows reach, in order of first appearance, and per row of ``weights`` (one weight per taken
    row) their sums, from a single read of the rows.

    ``slot`` (int32, -1 per column) marks where each column's sums are kept meanwhile and is
    left all -1 again: the cost follows the entries read, not the number of columns.
    """
    n_entries = 0
    for j in range(rows.size):
        n_entries += indptr[rows[j] + 1] - indptr[rows[j]]
    cols = np.empty(n_entries, dtype=np.int64)
    sums = np.zeros((weights.shape[0], n_entries))
    n = 0
    for j in range(rows.size):
        for p in range(indptr[rows[j]], indptr[rows[j] + 1]):
            col = indices[p]
            at = slot[col]
            if at < 0:
                at = n
                slot[col] = n
                cols[n] = col
                n += 1
            for w in range(weights.shape[0]):
                sums[w, at] += weights[w, j] * data[p]
    for j in range(n):
        slot[cols[j]] = -1
    return cols[:n], sums[:, :n]


@numba.jit(**_JIT)
def feature_rows(x: np.ndarray, items: np.ndarray, pos: np.ndarray, bought: np.ndarray,
                 own: np.ndarray, scalars: np.ndarray, log_buyers: np.ndarray,
                 repeat_logit: np.ndarray, gap_days: np.ndarray, recent: np.ndarray,
                 cf: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                 relative: np.ndarray) -> None:
    """Fill the candidates' feature rows (see ``features.FEATURES`` for what each column is).

    ``own``: per distinct item of the member, columns orders, rec, steady, last, rank_share,
    in_last, own_gap (``pos`` finds a bought candidate's row). ``scalars``: now, n_orders,
    tot_short, tot_long, user_repeat, log1p(idle days), eps. ``log_buyers``, ``repeat_logit``,
    ``gap_days``: per item of the catalogue. ``recent``: rows 30- and 7-day sales per candidate; ``cf``:
    cf_user, cf_flat, cf_next, cf_ease, cf_knn, per item of the catalogue. Columns 21-23 and 26-27 are
    filled by the caller beforehand; the relative columns (29 on) restate ``relative``'s
    columns against the best row not bought (all rows when every candidate was bought).
    """
    now, n_orders, tot_short, tot_long, user_repeat, idle, eps = scalars
    day = 86400.0
    cf_user, cf_flat, cf_next, cf_ease, cf_knn = cf
    for r in range(items.size):
        i = items[r]
        b = 1.0 if bought[r] else 0.0
        orders = rec = steady = last = rank_share = in_last = own_gap = 0.0
        if bought[r]:
            p = pos[r]
            orders, rec, steady, last = own[p, 0], own[p, 1], own[p, 2], own[p, 3]
            rank_share, in_last, own_gap = own[p, 4], own[p, 5], own[p, 6]
        days_since = max(now - last, 0.0) / day
        sales_30 = np.log1p(recent[0, r])
        x[r, 0] = b
        x[r, 1] = np.log1p(orders)
        x[r, 2] = orders / max(n_orders, 1.0)
        x[r, 3] = rec / max(tot_short, eps)
        x[r, 4] = steady / max(tot_long, eps)
        x[r, 5] = b * np.log1p(days_since)
        x[r, 6] = b * repeat_logit[i]
        x[r, 7] = np.log(cf_user[i] + eps)
        x[r, 8] = np.log(cf_next[i] + eps)
        x[r, 9] = sales_30
        x[r, 10] = log_buyers[i]
        x[r, 11] = b * np.log1p(n_orders)
        x[r, 12] = np.log(cf_ease[i] + eps)
        x[r, 13] = b * user_repeat
        x[r, 14] = b * sales_30
        x[r, 15] = rank_share
        x[r, 16] = b * np.log1p(days_since / gap_days[i])
        x[r, 17] = np.log1p(recent[1, r])
        x[r, 18] = in_last
        x[r, 19] = np.log(cf_knn[i] + eps)
        x[r, 20] = idle
        x[r, 24] = b * np.log1p(days_since / max(own_gap, 1.0))
        x[r, 25] = b * np.log1p(own_gap)
        x[r, 28] = np.log(cf_flat[i] + eps)
    any_fresh = False
    for r in range(items.size):
        any_fresh = any_fresh or not bought[r]
    for j in range(relative.size):
        c = relative[j]
        best = -np.inf
        for r in range(items.size):
            if (not bought[r] or not any_fresh) and x[r, c] > best:
                best = x[r, c]
        for r in range(items.size):
            x[r, 29 + j] = x[r, c] - best
