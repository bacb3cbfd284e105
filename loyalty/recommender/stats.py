"""Item statistics learned at training time: popularity, re-buy propensity, similarities.

Input lines are deduplicated to one per (order, item) before anything is
counted, so a large order line counts as one purchase event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from loyalty.recommender.data import DAY


@dataclass
class ItemStats:
    """Everything the features read that does not depend on the requesting user."""

    buyers: np.ndarray  # distinct buyers per item
    repeat_rate: np.ndarray  # smoothed share of buyers who bought the item in 2+ orders
    trend: np.ndarray  # buyer events, decayed towards the end of the training data
    co_user: sp.csr_matrix  # item -> item, bought by the same customers (cosine, shrunk)
    co_next: sp.csr_matrix  # item -> item, bought in the customer's next order
    end_time: float


def dedupe(user: np.ndarray, item: np.ndarray, time: np.ndarray, basket: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One line per (user, basket, item), sorted by user, time, basket."""
    order = np.lexsort((item, basket, time, user))
    u, i, t, b = (np.asarray(a)[order] for a in (user, item, time, basket))
    keep = np.ones(u.size, dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (b[1:] != b[:-1]) | (i[1:] != i[:-1])
    return (u[keep].astype(np.int64), i[keep].astype(np.int64),
            t[keep].astype(np.float64), b[keep].astype(np.int64))


def keep_top(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of each row (the item's nearest neighbours)."""
    m = m.tocsr()
    m.sort_indices()
    lens = np.diff(m.indptr)
    keep = np.ones(m.data.size, dtype=bool)
    for r in np.flatnonzero(lens > n):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        drop = np.argpartition(-m.data[lo:hi], n)[n:]
        keep[lo + drop] = False
    rows = np.repeat(np.arange(m.shape[0]), lens)[keep]
    return sp.csr_matrix((m.data[keep], (rows, m.indices[keep])), shape=m.shape)


def _cosine(x: sp.csr_matrix, shrink: float, neighbours: int) -> sp.csr_matrix:
    """Item-item cosine of the columns of x, damped for pairs seen only a few times."""
    x = x.tocsc()
    co = (x.T @ x).tocoo()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    off = co.row != co.col
    r, c, v = co.row[off], co.col[off], co.data[off]
    # Counting shared buyers (binary x) lets shrink act on co-occurrence support.
    sim = v / (norms[r] * norms[c]) * (v / (v + shrink))
    return keep_top(sp.csr_matrix((sim, (r, c)), shape=co.shape), neighbours)


def _next_order(u: np.ndarray, i: np.ndarray, b: np.ndarray, n_items: int, neighbours: int
                ) -> sp.csr_matrix:
    """P(item j in the next order | item i in this order), from consecutive orders of a customer."""
    # Number each user's orders 0, 1, 2, ... (lines are sorted by user then time).
    new_basket = np.ones(u.size, dtype=bool)
    new_basket[1:] = (u[1:] != u[:-1]) | (b[1:] != b[:-1])
    bid = np.cumsum(new_basket) - 1
    n_b = int(bid[-1]) + 1 if bid.size else 0
    b_user = np.full(n_b, -1)
    b_user[bid] = u
    nxt_same_user = np.zeros(n_b, dtype=bool)
    nxt_same_user[:-1] = b_user[1:] == b_user[:-1]
    # basket x item incidence; transitions = B[k].T @ B[k+1] over consecutive pairs.
    inc = sp.csr_matrix((np.ones(bid.size), (bid, i)), shape=(n_b, n_items))
    src = np.flatnonzero(nxt_same_user)
    trans = (inc[src].T @ inc[src + 1]).tocsr()
    trans = (trans - sp.diags(trans.diagonal())).tocsr()  # repeats are the other features' job
    trans.eliminate_zeros()
    seen = np.asarray(inc[src].sum(axis=0)).ravel()
    # Row-normalise with a prior so that rare predecessors do not give certainties.
    scale = 1.0 / (seen + 10.0)
    trans = sp.diags(scale) @ trans
    return keep_top(trans.tocsr(), neighbours)


def item_stats(u: np.ndarray, i: np.ndarray, t: np.ndarray, b: np.ndarray, n_users: int,
               n_items: int, *, trend_half_life_days: float, shrink: float, neighbours: int,
               repeat_prior: float = 5.0) -> ItemStats:
    """Compute item statistics from deduplicated lines (see :func:`dedupe`)."""
    end = float(t.max()) if t.size else 0.0
    ui = sp.csr_matrix((np.ones(u.size), (u, i)), shape=(n_users, n_items))
    ui.sum_duplicates()  # orders per (user, item)
    binary = ui.copy()
    binary.data[:] = 1.0
    buyers = np.asarray(binary.sum(axis=0)).ravel()
    repeaters = np.bincount(ui.indices[ui.data >= 2], minlength=n_items).astype(np.float64)
    base = repeaters.sum() / max(buyers.sum(), 1.0)
    repeat_rate = (repeaters + repeat_prior * base) / (buyers + repeat_prior)
    decay = np.exp2(-(end - t) / (trend_half_life_days * DAY))
    trend = np.bincount(i, weights=decay, minlength=n_items)
    return ItemStats(
        buyers=buyers,
        repeat_rate=repeat_rate,
        trend=trend,
        co_user=_cosine(binary, shrink, neighbours),
        co_next=_next_order(u, i, b, n_items, neighbours),
        end_time=end,
    )
