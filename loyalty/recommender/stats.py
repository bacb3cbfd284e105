"""Item statistics learned at training time: popularity, re-buy propensity, similarities.

Input lines are deduplicated to one per (order, item) before anything is
counted, so a large order line counts as one purchase event.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from loyalty.recommender.data import DAY
from loyalty.recommender.fit_kernels import dense_row_top, row_top
from loyalty.recommender.kernels import EPS, add_cells, longest_first_top, probe_neighbours
from loyalty.recommender.sales import count_events, event_keys, most, trend_index
from loyalty.recommender.scores import ScoreSheet

PROBE_ITEMS = 16  # at most this many of a member's items look for similar customers (default)


@dataclass
class ItemStats:
    """Everything the features read that does not depend on the requesting user.

    Memory grows with the number of distinct (user, item) pairs and items,
    never with users x items: item-item matrices keep at most ``neighbours``
    entries per item and the user-kNN search goes through a capped index of
    each item's strongest buyers.
    """

    buyers: np.ndarray  # distinct buyers per item
    repeat_rate: np.ndarray  # smoothed share of buyers who bought the item in 2+ orders
    event_key: np.ndarray  # sorted item * KEY_SPAN + second of each purchase event (see sales)
    gap_days: np.ndarray  # typical days between two purchases of the item by one customer
    co_user: sp.csr_matrix  # item -> item, bought by the same customers (cosine, shrunk)
    co_next: sp.csr_matrix  # item -> item, bought in the customer's next order
    ease: sp.csr_matrix  # item -> item, EASE regression weights (strongest kept)
    user_unit: sp.csr_matrix  # users x items, rank-decayed order shares scaled to unit length
    user_norms: np.ndarray  # the length each row of user_unit was divided by
    item_buyers: sp.csr_matrix  # items x users, user_unit transposed, strongest buyers per item
    end_time: float
    # items x k, float32: right singular vectors of the members x items matrix (PureSVD);
    # a member's profile projected on them and back scores the whole catalogue (see features).
    factors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0), np.float32))
    # Per item, a group of items bought by the same members (k-means on the factors; -1: none).
    # Stands in for a catalogue's categories, which many shops' data do not have.
    clusters: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        for name in ("co_user", "co_next", "ease"):  # pull() bisects their rows
            m = getattr(self, name, None)  # (tests build partial statistics)
            if m is not None and not m.has_canonical_format:
                m.sum_duplicates()  # sorts each row's columns too
        self._recent: dict[tuple[int, float], np.ndarray] = {}
        self._trending: dict[tuple[int, float, int], np.ndarray] = {}
        self._trend_index: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, int]] = {}
        self._in_category: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._group_best: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._by_length: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._scratch = threading.local()
        self._item_terms: tuple[np.ndarray, np.ndarray] | None = None

    def item_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per item, log(1 + buyers) and the logit of its re-buy rate: the feature terms that
        depend on the item only, computed once per model (NumPy's float32 log1p of the counts
        is the value the ranker was trained on, to the last bit)."""
        if self._item_terms is None:
            rr = np.clip(self.repeat_rate, EPS, 1.0 - EPS)
            self._item_terms = (np.log1p(self.buyers).astype(np.float64), np.log(rr / (1.0 - rr)))
        return self._item_terms

    def score_sheet(self, n_scores: int) -> ScoreSheet:
        """This thread's :class:`ScoreSheet` over the catalogue (all zero between requests)."""
        sheet = getattr(self._scratch, "sheet", None)
        if sheet is None or sheet.values.shape != (n_scores, self.buyers.size):
            sheet = self._scratch.sheet = ScoreSheet(self.buyers.size, n_scores)
        return sheet

    def in_category(self, category: np.ndarray) -> np.ndarray:
        """Each item's share of its category's buyers (0 for items without a category).

        Computed once per category array (the model's, replaced by set_catalog, or the clusters).
        """
        cached = self._in_category.get(id(category))
        if cached is not None and cached[0] is category:
            return cached[1]
        known = category >= 0
        cats = np.where(known, category, 0)
        totals = np.bincount(cats[known], weights=self.buyers[known],
                             minlength=int(cats.max()) + 1 if cats.size else 0)
        share = np.where(known, self.buyers / np.maximum(totals[cats], 1.0), 0.0)
        if len(self._in_category) > 4:
            self._in_category.clear()
        self._in_category[id(category)] = (category, share)
        return share

    def factors_by_length(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items in order of their factor vector's length (longest first), those lengths and the
        factor rows in that order (built once per model)."""
        if self._by_length is None:
            length = np.linalg.norm(self.factors, axis=1)
            order = np.argsort(-length, kind="stable")
            self._by_length = (order, length[order], np.ascontiguousarray(self.factors[order]))
        return self._by_length

    def factor_top(self, q: np.ndarray, n: int) -> np.ndarray:
        """The n items whose factors score highest (and above 0) against the vector q.

        Exact, yet it reads only the items whose factor length can still beat the n-th best
        score found so far (x . q <= |x| |q|): rows go longest first, in a compiled loop
        (:func:`kernels.longest_first_top`). The long tail's factors are near zero, so on the
        1M-member chain a few thousand of 48,000 rows settle it.
        """
        order, length, rows = self.factors_by_length()
        return order[longest_first_top(rows, length, np.ascontiguousarray(q), int(n))[0]]

    def group_best(self, group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per group value, its n items with the largest share of the group's buyers (CSR-like:
        the items of value g are ``best[indptr[g]:indptr[g + 1]]``). Cached per group array."""
        key = (id(group), n)
        cached = self._group_best.get(key)
        if cached is not None and cached[0] is group:
            return cached[1], cached[2]
        share = self.in_category(group)
        items = np.flatnonzero(group >= 0)
        items = items[np.lexsort((items, -share[items], group[items]))]
        g = group[items]
        n_groups = int(group.max()) + 1
        start = np.searchsorted(g, np.arange(n_groups + 1))
        rank = np.arange(items.size) - start[g]
        best = items[rank < n]
        indptr = np.searchsorted(group[best], np.arange(n_groups + 1))
        if len(self._group_best) > 4:
            self._group_best.clear()
        self._group_best[key] = (group, indptr, best)
        return indptr, best

    def neighbours(self, items: np.ndarray, values: np.ndarray, user: int, k: int,
                   probe: int = PROBE_ITEMS) -> tuple[np.ndarray, np.ndarray]:
        """The k customers most like this one, and the weight of each one's ``user_unit`` row in
        what they buy (their similarity over the sum of the similarities, times the row's length:
        their purchase vectors, similarity-weighted).

        Only customers who share an item with this one can be similar; they
        are found through ``item_buyers``, so the cost does not grow with the
        number of members: the member's ``probe`` items of highest value look (of equal values,
        the first). The user's own training row is skipped.
        """
        return probe_neighbours(self.item_buyers.indptr, self.item_buyers.indices, self.item_buyers.data,
                                np.ascontiguousarray(items, dtype=np.int64),
                                np.ascontiguousarray(values, dtype=np.float64),
                                int(probe), int(user), int(k), self.user_norms)

    def pull(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """co_user + ease + co_next at rows x cols, dense: how much each past item pulls
        each new one. Each cell is looked up in its row by bisection (kernels.add_cells): the
        anchors are the member's strongest items, often best-sellers with rows of thousands,
        and a scan of those rows was a discovery request's largest single cost."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        for bad in (rows, cols):
            if bad.size and (bad.min() < 0 or bad.max() >= self.buyers.size):  # the loop would not check
                raise IndexError(f"item out of range for a catalogue of {self.buyers.size}")
        out = np.zeros((rows.size, cols.size))
        for m in (self.co_user, self.ease, self.co_next):  # summed in this order
            add_cells(m.indptr, m.indices, m.data, rows, cols, out)
        return out

    def trending(self, now: float, days: float, n: int) -> np.ndarray:
        """The n items with the most purchase events in the window (see :meth:`recent_counts`),
        most first (ties: the lower item first).

        A window of whole days reads the few items :meth:`trend_index` names for its last day
        instead of counting every item's events: a request at a new hour (or, in evaluation,
        at each member's own moment) costs microseconds, not a pass over the catalogue.
        """
        hi = self._window_end(now)
        key = (hi, days, n)
        top = self._trending.get(key)
        if top is not None:
            return top
        if n <= 0:
            top = np.zeros(0, dtype=np.int64)
        elif days != int(days) or days < 1:
            counts = self.recent_counts(now, days)
            pool = np.flatnonzero(counts > 0)
            top = most(pool, counts[pool], n)
        else:
            indptr, items, first_day = self.trend_index(int(days), n)
            day = hi // int(DAY) - first_day
            pool = items[indptr[day]:indptr[day + 1]] if 0 <= day < indptr.size - 1 else items[:0]
            counts = self.recent_counts(now, days, pool)
            sold = counts > 0
            top = most(pool[sold], counts[sold], n)
        if len(self._trending) > 64:
            self._trending.clear()
        self._trending[key] = top
        return top

    def trend_index(self, days: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        """:func:`sales.trend_index` of this model's events, built once per (days, n)."""
        index = self._trend_index.get((days, n))
        if index is None:
            index = self._trend_index[(days, n)] = trend_index(
                self.event_key, self.buyers.size, self.end_time + 1.0, days, n)
        return index

    def _window_end(self, now: float) -> int:
        """Where a window read at ``now`` ends: the hour before it, never after training ended."""
        hi = int(min(now, self.end_time + 1.0))
        return hi - hi % 3600

    def recent_counts(self, now: float, days: float, items: np.ndarray | None = None) -> np.ndarray:
        """Purchase events per item in the ``days`` before ``now`` (capped at the end of training),
        for the given items or the whole catalogue.

        Reading the window at the request time keeps "trending" honest when
        the moment asked about lies inside the training period (evaluation).
        The window ends on the hour before ``now``. Every request after training
        shares the last window: the whole catalogue is counted for it once and
        kept. A moment inside the training period (evaluation, training
        examples) counts the given items only.
        """
        hi = self._window_end(now)
        if items is None or hi == self._window_end(self.end_time + 1.0):
            counts = self._recent.get((hi, days))
            if counts is None:
                counts = count_events(self.event_key, np.arange(self.buyers.size), hi, days)
                if len(self._recent) > 64:
                    self._recent.clear()
                self._recent[(hi, days)] = counts
            return counts if items is None else counts[items]
        return count_events(self.event_key, items, hi, days)


def dedupe(user: np.ndarray, item: np.ndarray, time: np.ndarray, basket: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One line per (user, basket, item), sorted by user, time, basket."""
    order = np.lexsort((item, basket, time, user))
    u, i, t, b = (np.asarray(a)[order] for a in (user, item, time, basket))
    keep = np.ones(u.size, dtype=bool)
    keep[1:] = (u[1:] != u[:-1]) | (b[1:] != b[:-1]) | (i[1:] != i[:-1])
    return (u[keep].astype(np.int64), i[keep].astype(np.int64),
            t[keep].astype(np.float64), b[keep].astype(np.int64))


def keep_top(m: sp.spmatrix, n: int) -> sp.csr_matrix:
    """Keep the n largest positive entries of each row (of equal ones, the lower column), as
    float32 with each row's columns in order."""
    m = m.tocsr()
    rows, cols = m.shape
    indptr, indices, data = row_top(m.indptr.astype(np.int64), m.indices, m.data, 0, np.ones(rows),
                                    np.ones(cols), 0.0, True, n)
    return sp.csr_matrix((data, indices, indptr), shape=m.shape)


def top_products(left: sp.csr_matrix, right: sp.csr_matrix, neighbours: int, *,
                 row_scale: np.ndarray | None = None, col_scale: np.ndarray | None = None,
                 shrink: float = 0.0, diagonal: bool = False, max_pairs: float = 2e7) -> sp.csr_matrix:
    """Row-wise top ``neighbours`` positive scores of left.T @ right, a block of items at a time.

    ``left`` and ``right`` are events x items. A co-occurrence count v of items
    (r, c) scores v x row_scale[r] x col_scale[c] (each 1 when not given), damped by
    v / (v + shrink) when ``shrink`` > 0; pairs (r, r) only with ``diagonal``. The
    full items x items product is never held, only about ``max_pairs`` of it.
    """
    lt = left.T.tocsr()
    n = lt.shape[0]
    rc = right.tocsr()
    rows_scale = np.ones(n) if row_scale is None else np.asarray(row_scale, dtype=np.float64)
    cols_scale = np.ones(rc.shape[1]) if col_scale is None else np.asarray(col_scale, dtype=np.float64)
    # Upper bound of each item's row in the product: its events times their widths.
    width = np.diff(rc.indptr).astype(np.float64)
    work = np.asarray(lt @ width).ravel() if lt.nnz else np.zeros(n)
    bounds = [0]
    acc = 0.0
    for r in range(n):
        acc += work[r]
        if acc > max_pairs and r > bounds[-1]:
            bounds.append(r)
            acc = work[r]
    bounds.append(n)
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
        if hi <= lo:
            continue
        co = lt[lo:hi] @ rc
        indptr, indices, data = row_top(co.indptr.astype(np.int64), co.indices, co.data, lo, rows_scale,
                                        cols_scale, float(shrink), diagonal, neighbours)
        parts.append(sp.csr_matrix((data, indices, indptr), shape=(hi - lo, rc.shape[1])))
    if not parts:
        return sp.csr_matrix((n, rc.shape[1]), dtype=np.float32)
    return sp.vstack(parts, format="csr")


def cosine_neighbours(x: sp.csr_matrix, neighbours: int, *, shrink: float = 0.0,
                      diagonal: bool = False) -> sp.csr_matrix:
    """Each item's ``neighbours`` nearest by the cosine of the columns of x, damped for pairs seen
    only a few times when ``shrink`` > 0; the item itself only with ``diagonal``."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    # Counting shared buyers (binary x) lets shrink act on co-occurrence support.
    return top_products(x, x, neighbours, row_scale=inverse, col_scale=inverse, shrink=shrink,
                        diagonal=diagonal)


_MIRROR_BLOCK = 512  # rows of an inverse mirrored at a time


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, in ``a``'s memory when ``a`` is in row
    order: through its Cholesky factor, half the work of a general inverse (Instacart's 6,000
    best-sellers: 1.3 s instead of 6.7 s, the same values to 1e-6)."""
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (a,))
    # a.T is the same matrix in LAPACK's column order: factored and inverted without a copy.
    factor, info = potrf(a.T, lower=True, overwrite_a=True, clean=False)
    if info == 0:
        inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"not positive definite (LAPACK info {info})")
    # Back in row order, potri's triangle is the upper one (the lower still holds the factor):
    # mirror it block by block, in place.
    inverse = inverse.T
    n = inverse.shape[0]
    for start in range(0, n, _MIRROR_BLOCK):
        end = min(start + _MIRROR_BLOCK, n)
        square = inverse[start:end, start:end]
        square[...] = np.triu(square) + np.triu(square, 1).T
        inverse[end:, start:end] = inverse[start:end, end:].T
    return inverse


def _ease(binary: sp.csr_matrix, reg: float, neighbours: int, max_items: int) -> sp.csr_matrix:
    """EASE (Steck, 2019): closed-form item-to-item regression with a zero diagonal.

    It solves a dense system, so on catalogues above ``max_items`` it is
    learned among the ``max_items`` items with the most buyers only (memory
    and time bounded by that number, in float32); the long tail gets its
    collaborative signal from the other similarities.
    """
    if reg <= 0:
        raise ValueError("EASE needs a positive ridge (ease_reg): it keeps the Gram matrix invertible")
    n = binary.shape[1]
    if n == 0 or max_items <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    buyers = np.asarray(binary.sum(axis=0)).ravel()
    keep = np.flatnonzero(buyers > 0)
    if keep.size > max_items:
        keep = np.sort(np.argsort(-buyers, kind="stable")[:max_items])
    m_items = keep.size
    if m_items < 2:
        return sp.csr_matrix((n, n), dtype=np.float32)
    sub = binary[:, keep].astype(np.float32)
    gram = (sub.T @ sub).toarray()
    gram[np.diag_indices(m_items)] += reg
    p = _spd_inverse(gram)
    del gram
    p /= (-np.diag(p))[None, :]
    p[np.diag_indices(m_items)] = 0.0
    # Keep each row's strongest positive weights; negative ones would only push items down.
    indptr, cols, vals = dense_row_top(p, neighbours)
    del p
    counts = np.zeros(n + 1, dtype=np.int64)
    counts[keep + 1] = np.diff(indptr)
    return sp.csr_matrix((vals, keep[cols].astype(np.int32), np.cumsum(counts)), shape=(n, n))


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
    inc = sp.csr_matrix((np.ones(bid.size, dtype=np.float32), (bid, i)), shape=(n_b, n_items))
    src = np.flatnonzero(nxt_same_user)
    seen = np.asarray(inc[src].sum(axis=0)).ravel()
    # Row-normalise with a prior so that rare predecessors do not give certainties.
    scale = 1.0 / (seen + 10.0)

    # The diagonal left out: repeats are the other features' job.
    return top_products(inc[src], inc[src + 1], neighbours, row_scale=scale)


def _pair_index(ui: sp.csr_matrix, u: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Position in ``ui.data`` of each line's (user, item) pair."""
    ui.sort_indices()
    # Row-major keys are sorted in CSR order, so one global search finds every pair.
    rows = np.repeat(np.arange(ui.shape[0], dtype=np.int64), np.diff(ui.indptr))
    key = rows * ui.shape[1] + ui.indices
    return np.searchsorted(key, u.astype(np.int64) * ui.shape[1] + i)


def _user_vectors(u: np.ndarray, i: np.ndarray, b: np.ndarray, n_users: int, n_items: int,
                  rank_decay: float) -> sp.csr_matrix:
    """Per user, the share of their orders containing each item, recent orders weighing more.

    Must match ``rank_share`` in :mod:`loyalty.recommender.features`.
    """
    if u.size == 0:
        return sp.csr_matrix((n_users, n_items))
    new_basket = np.ones(u.size, dtype=bool)
    new_basket[1:] = (u[1:] != u[:-1]) | (b[1:] != b[:-1])
    bid = np.cumsum(new_basket) - 1
    last_bid = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(last_bid, u, bid)
    first_bid = np.full(n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_bid, u, bid)
    w = rank_decay ** (last_bid[u] - bid).astype(np.float64)
    n_orders = (last_bid - first_bid + 1).astype(np.float64)
    total = np.where(n_orders > 0, (1.0 - rank_decay ** np.maximum(n_orders, 0)) / (1.0 - rank_decay), 1.0)
    m = sp.csr_matrix(((w / total[u]).astype(np.float32), (u, i)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


def latent_factors(x: sp.csr_matrix, k: int, seed: int = 0, n_iter: int = 4
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Item factors of a rank-k truncated SVD of members x items (PureSVD, Cremonesi et al. 2010).

    Randomised (Halko et al.): a few passes over the sparse matrix with a
    members x (k + 10) block, so memory grows with members x k and the
    matrix's non-zeros, never with members x items. Returns items x k float32
    and the k singular values, how much of who-buys-what each factor explains
    (0 columns when k is 0 or the matrix is too small).
    """
    n_users, n_items = x.shape
    k = min(k, n_users - 1, n_items - 1)
    if k <= 0 or x.nnz == 0:
        return np.zeros((n_items, 0), dtype=np.float32), np.zeros(0)
    from sklearn.utils.extmath import randomized_svd

    _, strength, vt = randomized_svd(x.astype(np.float32), k, n_oversamples=10, n_iter=n_iter,
                                     random_state=seed)
    return np.ascontiguousarray(vt.T, dtype=np.float32), strength


def item_clusters(factors: np.ndarray, buyers: np.ndarray, n: int, strength: np.ndarray | None = None,
                  seed: int = 0, iterations: int = 15, min_buyers: int = 3, over: int = 3) -> np.ndarray:
    """Groups of items bought by the same members: spherical k-means on item factors
    (:func:`group_factors` in the model), ``over`` times as many groups as asked, then merged.

    ``n`` < 0 picks about one group per 200 sold items (8 to 512). Centres are
    learned on items with at least ``min_buyers`` buyers, then every sold item
    joins its nearest centre; unsold items get -1. With ``strength`` (the
    factors' singular values) each factor weighs the square root of its own:
    unweighed, the weakest of 48 factors, mostly noise, counted as much as the
    strongest (on the 10k-member chain, counted by buyers, 91% of the items
    fell in a group whose main category was their own; weighed, 97%).

    Straight k-means to n groups sometimes cut one natural group in two and
    joined two others, by the luck of its seeding: on the 10k-member chain,
    trained to 30 days before its end, 7.4% of a category's buyers fell outside
    its main group with seed 0, 1.3-3.6% with five others (large catalogue:
    6.7-11.0% with four seeds). Learning ``over`` x n groups, merging the
    closest centres down to n (:func:`_merge_centres`) and refining left
    0.9-1.1% (large catalogue: 4.8-5.0%) with each of four seeds.
    """
    if strength is not None and strength.size:
        factors = factors * np.sqrt(np.maximum(strength, 0.0)).astype(np.float32)
    n_items = factors.shape[0]
    out = np.full(n_items, -1, dtype=np.int64)
    norms = np.linalg.norm(factors, axis=1) if factors.size else np.zeros(n_items)
    ok = (buyers > 0) & (norms > 0)
    n = group_count(buyers, n)
    fit = np.flatnonzero(ok & (buyers >= min_buyers))
    if fit.size <= n:
        fit = np.flatnonzero(ok)
    if n <= 1 or fit.size <= n:
        return out
    unit = factors / np.where(norms > 0, norms, 1.0)[:, None]
    points = unit[fit]
    seeds = _farthest_seeds(points, min(max(over, 1) * n, fit.size), np.random.default_rng(seed))
    centres = _spherical_kmeans(points, seeds, iterations)
    if centres.shape[0] > n:
        size = np.bincount(np.argmax(points @ centres.T, axis=1), minlength=centres.shape[0])
        centres = _spherical_kmeans(points, _merge_centres(centres, size, n), max(iterations // 3, 1))
    every = np.flatnonzero(ok)
    for lo in range(0, every.size, 50_000):  # bounded: 50,000 items x n scores at a time
        part = every[lo:lo + 50_000]
        out[part] = np.argmax(unit[part] @ centres.T.astype(np.float32), axis=1)
    return out


def _farthest_seeds(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on unit vectors: each next centre far (in angle) from those chosen so far."""
    chosen = [int(rng.integers(points.shape[0]))]
    closest = 1.0 - points @ points[chosen[0]]
    for _ in range(n - 1):
        far = np.maximum(closest, 0.0)
        total = far.sum()
        nxt = int(rng.choice(points.shape[0], p=far / total)) if total > 0 else int(rng.integers(points.shape[0]))
        chosen.append(nxt)
        closest = np.minimum(closest, 1.0 - points @ points[nxt])
    return points[chosen]


def _spherical_kmeans(points: np.ndarray, centres: np.ndarray, iterations: int) -> np.ndarray:
    """Unit centres after the given k-means iterations by angle."""
    n = centres.shape[0]
    for _ in range(iterations):
        assign = np.argmax(points @ centres.T, axis=1)
        sums = sp.csr_matrix((np.ones(points.shape[0], np.float32), (assign, np.arange(points.shape[0]))),
                             shape=(n, points.shape[0])) @ points
        length = np.linalg.norm(sums, axis=1)
        centres = np.where(length[:, None] > 0, sums / np.where(length > 0, length, 1.0)[:, None], centres)
    return centres


def _merge_centres(centres: np.ndarray, size: np.ndarray, n: int, least: float = 0.25) -> np.ndarray:
    """n unit centres from more: average linkage by angle, each merged centre the size-weighted
    direction of its members. Centres holding fewer than ``least`` x the mean number of points
    (stray items) are left out; the refinement after the merge places their items."""
    from scipy.cluster.hierarchy import fcluster, linkage

    live = size > 0
    live &= size >= least * size[live].mean()
    centres, size = centres[live].astype(np.float64), size[live]
    if centres.shape[0] <= n:
        return centres.astype(np.float32)
    label = fcluster(linkage(centres, method="average", metric="cosine"), n, criterion="maxclust") - 1
    sums = np.zeros((int(label.max()) + 1, centres.shape[1]))
    np.add.at(sums, label, centres * size[:, None])
    return (sums / np.maximum(np.linalg.norm(sums, axis=1), 1e-12)[:, None]).astype(np.float32)


def group_count(buyers: np.ndarray, n: int) -> int:
    """The number of learned groups: ``n``, or for n < 0 about one per 200 sold items (8 to 512)."""
    return int(np.clip(round(int((buyers > 0).sum()) / 200), 8, 512)) if n < 0 else n


def group_factors(binary: sp.csr_matrix, buyers: np.ndarray, k: int, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Item coordinates for the learned groups and their singular values (see item_clusters).

    The SVD of members x items with each member's row divided by the square root of their
    number of items and each item's column by the square root of its buyers, as in spectral
    co-clustering (Dhillon 2001): unscaled, the strongest factors follow the heaviest buyers and
    the best-sellers, and a taste shared by few members hides among the weak ones. Its first
    factor is the same for every item but for the item's buyers (sqrt(buyers), singular value
    1); that direction is taken out of all k + 1 factors rather than dropping the first one
    computed, which on a few nearly separate groups is any mix of them.
    """
    if k <= 0 or binary.nnz == 0:
        return latent_factors(binary, 0, seed)
    per_member = np.asarray(binary.sum(axis=1)).ravel()
    scaled = (sp.diags((1.0 / np.sqrt(np.maximum(per_member, 1.0))).astype(np.float32)) @ binary
              @ sp.diags((1.0 / np.sqrt(np.maximum(buyers, 1.0))).astype(np.float32))).tocsr()
    v, strength = latent_factors(scaled, k + 1, seed)
    shared = np.sqrt(np.maximum(buyers, 0.0)).astype(np.float32)
    shared /= max(float(np.linalg.norm(shared)), 1e-12)
    v -= np.outer(shared, shared @ v)
    return v, strength


def buyer_index(user_unit: sp.csr_matrix, per_item: int) -> sp.csr_matrix:
    """Items x users: each item's ``per_item`` strongest buyers (the user-kNN search space)."""
    return keep_top(user_unit.T, per_item)


def _strongest(rows: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row's n largest entries (rows that short are kept as they are, and so is the whole
    matrix when none is longer)."""
    if n <= 0 or rows.nnz == 0 or int(np.diff(rows.indptr).max()) <= n:
        return rows
    return keep_top(rows, n)


def item_stats(u: np.ndarray, i: np.ndarray, t: np.ndarray, b: np.ndarray, n_users: int,
               n_items: int, *, shrink: float, neighbours: int, rank_decay: float,
               ease_reg: float = 200.0, ease_max_items: int = 6_000,
               repeat_prior: float = 5.0, buyers_per_item: int = 300, factors: int = 0,
               clusters: int = 0, member_row_items: int = 0) -> ItemStats:
    """Compute item statistics from deduplicated lines (see :func:`dedupe`).

    ``member_row_items`` > 0 keeps that many of each member's strongest items in ``user_unit``
    (what similar members buy, spread per request); the buyer index that finds them is built
    from the whole rows first.
    """
    end = float(t.max()) if t.size else 0.0
    ui = sp.csr_matrix((np.ones(u.size, dtype=np.float32), (u, i)), shape=(n_users, n_items))
    ui.sum_duplicates()  # orders per (user, item)
    binary = ui.copy()
    binary.data[:] = 1.0
    buyers = np.asarray(binary.sum(axis=0)).ravel()
    repeaters = np.bincount(ui.indices[ui.data >= 2], minlength=n_items).astype(np.float64)
    base = repeaters.sum() / max(buyers.sum(), 1.0)
    repeat_rate = (repeaters + repeat_prior * base) / (buyers + repeat_prior)
    # Mean gap between first and last purchase per re-buying (user, item), pooled per item.
    first = np.full(ui.nnz, np.inf)
    last = np.full(ui.nnz, -np.inf)
    pair = _pair_index(ui, u, i)
    np.minimum.at(first, pair, t)
    np.maximum.at(last, pair, t)
    span = np.where(ui.data >= 2, (last - first) / DAY, 0.0)
    gaps = np.bincount(ui.indices, weights=span, minlength=n_items)
    intervals = np.bincount(ui.indices, weights=np.maximum(ui.data - 1, 0), minlength=n_items)
    base_gap = gaps.sum() / max(intervals.sum(), 1.0)
    gap_days = (gaps + repeat_prior * base_gap) / (intervals + repeat_prior)
    event_key = event_keys(i, t)
    vectors = _user_vectors(u, i, b, n_users, n_items, rank_decay)
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    unit = (sp.diags((1.0 / np.where(norms > 0, norms, 1.0)).astype(np.float32)) @ vectors).tocsr()
    del vectors
    latent, _ = latent_factors(binary, factors)
    n_groups = group_count(buyers, clusters)
    # At least as many group factors as groups, up to twice the PureSVD factors. On the large
    # catalogue (201 groups for 272 categories) 96 factors left 6% of a category's buyers outside
    # its main group, 48 left 17%; on the 10k-member chain (24 groups) fewer than 48 did worse.
    k = min(max(n_groups, factors), 2 * factors) if clusters else 0  # 0: no groups asked
    groups, strength = group_factors(binary, buyers, k)
    return ItemStats(
        buyers=buyers,
        repeat_rate=repeat_rate,
        event_key=event_key,
        gap_days=np.maximum(gap_days, 1.0),
        co_user=cosine_neighbours(binary, neighbours, shrink=shrink),
        co_next=_next_order(u, i, b, n_items, neighbours),
        ease=_ease(binary, ease_reg, neighbours, ease_max_items),
        user_unit=_strongest(unit, member_row_items),
        user_norms=norms.astype(np.float32),
        item_buyers=buyer_index(unit, buyers_per_item),
        end_time=end,
        factors=latent,
        clusters=item_clusters(groups, buyers, n_groups, strength),
    )
