"""The recommender: repeat purchases, collaborative discovery and best-seller fallback.

For a member with a history, candidates are the items they bought, the items
most similar to their (recency-weighted) purchases, the items that tend to
follow their recent orders, their favourite categories' best-sellers and
what is trending. Learned rankers (boosted trees blended with a logistic
screen; logistic alone for small shops) weigh the candidate features (see
:mod:`loyalty.recommender.features` and :mod:`loyalty.recommender.ranker`).
A member without a history gets what sells in their segment, store and city.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from loyalty.recommender.data import DAY, HistoryStore, Interactions, UserHistory
from loyalty.recommender.features import INTERACTING, N_FEATURES, Candidates, FeatureConfig, candidates
from loyalty.recommender.kernels import top_k
from loyalty.recommender.ranker import (
    LinearRanker,
    TreeRanker,
    add_trees,
    fit_lambdarank,
    fit_ranker,
    fit_trees,
    listwise_available,
    quadratic_pairs,
)
from loyalty.recommender.sales import RECENT_DAYS, TREND_DAYS
from loyalty.recommender.stats import ItemStats, dedupe, item_stats

# Reason kinds; the service turns them into zh/en sentences.
REPEAT = "repeat"  # 因为你常买…
BOUGHT_WITH = "bought_with"  # 和你买过的…一起买的人也买了…
POPULAR = "popular"  # 热销 (qualified by the group level that supplied it)

log = logging.getLogger(__name__)

MAX_WINDOWS = 6  # automatic window_cuts: at most this many windows back
ANCHORS = 32  # a "bought with" reason names one of the member's this many strongest items (1M chain,
# 600 members: 96.5% of reasons name the same item as with 64, the strongest in most; the
# reason's lookup reads half the rows)

Progress = Callable[[str, int, int], None]
# Ranker examples: feature rows, bought (label), bought before, the two row weights, request number.
Examples = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Ranker = LinearRanker | TreeRanker


@dataclass(frozen=True)
class Config:
    """Hyper-parameters; the defaults were chosen on UCI Online Retail (see bench/)."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    shrink: float = 5.0
    ease_reg: float = 200.0
    neighbours: int = 100
    buyers_per_item: int = 300  # strongest buyers per item searched for similar customers
    # What similar members buy is read from their rows, each cut to their strongest items (0: whole
    # rows). A grocer's households buy hundreds of items a year: on The Complete Journey a
    # request's 300 similar households read ~113,000 entries (a third of a request's time).
    # 128 against whole rows, validation split, NDCG@10 (last basket all/new, 30 days all/new):
    # UCI -0.0/-0.8/-0.6/-1.2%, the large catalogue +0.3/-0.7/-0.1/+0.7%, The Complete Journey
    # (30 days) +0.3/+1.3%, its harness requests p95 6.5 -> 4.7 ms ("all"), 7.1 -> 3.5 ms ("new").
    member_row_items: int = 128
    factors: int = 48  # latent item factors (PureSVD) behind the cf_svd feature; 0: none
    clusters: int = -1  # learned item groups (k-means on the factors); -1: one per ~200 sold items
    ranker_users: int = 4000  # users whose held-out order trains the ranker
    ranker_negatives: float = 0.3  # share of not-bought candidates kept to fit the ranker
    # Pairwise feature products in the main ranker: on UCI they lift leave-last-basket-out
    # HitRate@10 by ~1% but cost the time split ~3% NDCG@10 and double the fit time.
    interactions: bool = False
    # "trees": boosted trees (ranker.fit_trees) for both rankers; "linear": logistic regression.
    ranker: str = "trees"
    tree_iter: int = 100
    tree_depth: int = 6
    tree_leaves: int = 31
    tree_rate: float = 0.1
    tree_min_leaf: int = 200
    tree_min_positives: int = 500  # fewer bought examples: the linear ranker instead
    tree_blend: float = 1.0  # the linear screen's logit added to the trees' (an ensemble), "all" ranker
    tree_blend_new: float = 0.5  # the same for the "new" ranker (validation: 0 best on the synthetic chain, 1 on UCI)
    # The "all" ranker's trees learn to put each request's bought items first (LambdaRank on NDCG,
    # LightGBM) rather than to predict each row alone (log loss). Validation split, NDCG@10 in the
    # "all" cells: +0.7 to +2.5% on the synthetic chains, +0.6 and +1.3% on UCI (with the 0.25
    # blend); "new" lost on UCI and the large catalogue and keeps the pointwise trees.
    listwise_all: bool = True
    listwise_blend: float = 0.25  # the screen's logit added to the listwise trees' score
    # The discovery ranker adds LambdaRank trees fit on its own requests to its pointwise ones,
    # scaled to the same spread of scores and weighed this much (0: pointwise alone). Validation,
    # "new" cells, NDCG@10: +0.1 to +2.5% on UCI, +1.4 to +2.0% on the synthetic chain and the
    # large catalogue (weight 1: about the same, a little worse on UCI; 200 pointwise trees
    # instead: within +-0.6%). 40 listwise trees at twice the rate do as well as 100 (within
    # +-1.3%) and cost serving less.
    listwise_new: float = 0.5
    listwise_new_trees: int = 40
    listwise_new_rate: float = 0.2
    tree_screen: int = 32  # serving: the trees score the linear screen's best 32 (or 2k) rows only
    # Extra ranker examples: the last window_days held out, asked at the cut (see _fit_ranker),
    # for the "new" ranker, the "all" one, "both" or neither ("").
    window_days: float = 30.0
    window_for: str = "both"
    # That many windows back to back, the latest first, each asked at its own cut; 0: as many as
    # it takes for ranker_users requests (at most MAX_WINDOWS), so a shop whose last window holds
    # few active members still gets enough examples (see docs/recommender.md, seventh pass); a
    # shop too small for trees keeps one (see _window_examples).
    window_cuts: int = 0
    # Next-basket examples from that many orders back: each user's last order held out, then the
    # order before it (the later ones unseen), and so on; 0: as many as it takes for ranker_users
    # requests (at most MAX_WINDOWS).
    order_cuts: int = 0
    # Weigh each example user's rows by 1 / their held-out items, so every user counts alike, in
    # the "all" ranker, the "new" one, "both" or neither (""). On the validation splits it lifted
    # "all" and made "new" (small, noisy targets) a little worse.
    user_weights: str = "all"
    use_category: bool = True  # category share x in-category popularity features and candidates
    group_half_life_days: float = 90.0
    group_prior: float = 20.0  # buyer events a group needs before its own taste dominates
    seed: int = 0


@dataclass(frozen=True)
class Scored:
    """One recommended item with why: ``anchor`` is the item the reason names (-1: none)."""

    item: int
    score: float
    reason: str
    anchor: int = -1
    level: str = ""  # for POPULAR: "store", "segment", "city" or "" (everyone)


@dataclass
class GroupPopularity:
    """Decayed distinct-buyer counts per group value (rows) and item (columns)."""

    counts: sp.csr_matrix
    totals: np.ndarray


def _last_orders(u: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mask of lines in each user's last order, for users with 2+ orders (lines sorted by user, time)."""
    n = u.size
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = u[1:] != u[:-1]
    new_basket = new_user.copy()
    new_basket[1:] |= b[1:] != b[:-1]
    user_start = np.flatnonzero(new_user)
    baskets_per_user = np.add.reduceat(new_basket.astype(np.int64), user_start)
    last_start = np.flatnonzero(new_basket)
    # Start index of each user's last basket = last basket-start before the next user's start.
    user_end = np.append(user_start[1:], n)
    idx = np.searchsorted(last_start, user_end, side="left") - 1
    start_of_last = last_start[idx]
    mask = np.zeros(n, dtype=bool)
    for s, e, nb in zip(start_of_last, user_end, baskets_per_user, strict=False):
        if nb >= 2:
            mask[s:e] = True
    return mask


class Recommender:
    """Fit on order lines, update per order, answer from memory."""

    FORMAT = 5  # bump when the saved layout changes

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.n_users = 0
        self.n_items = 0
        self.stats: ItemStats | None = None
        self.history: HistoryStore | None = None
        self.ranker_all: Ranker | None = None
        self.ranker_new: Ranker | None = None
        self.category = np.zeros(0, dtype=np.int64)
        self.available = np.zeros(0, dtype=bool)
        self.groups: dict[str, GroupPopularity] = {}
        self.global_pop: np.ndarray = np.zeros(0)
        self.trained_at = 0.0
        self.version = ""  # set when saved or loaded (see loyalty.recommender.store)
        self.extra: dict[str, Any] = {}  # JSON-safe data saved alongside (the service's id maps)
        # Members' candidate features, kept for the hour they were computed in
        # (0: no cache; the service turns it on for serving).
        self.cache_size = 0
        self._cache: OrderedDict[tuple[int, int, int], Candidates] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ training
    def fit(self, data: Interactions, n_users: int, n_items: int, *,
            category: np.ndarray | None = None, available: np.ndarray | None = None,
            progress: Progress | None = None) -> Recommender:
        """Learn statistics, similarities and the ranker from all order lines.

        Quantities are accepted but each (order, item) counts once: how often an
        item is bought predicts the next order better than how many at a time.
        """
        if len(data) == 0:
            raise ValueError("no order lines to learn from")
        if (np.max(data.user) >= n_users or np.max(data.item) >= n_items):
            raise ValueError("interactions refer to users or items beyond n_users / n_items")
        cfg = self.config
        self.n_users, self.n_items = n_users, n_items
        self.category = (np.full(n_items, -1, dtype=np.int64) if category is None
                         else np.asarray(category, dtype=np.int64).copy())
        self.available = (np.ones(n_items, dtype=bool) if available is None
                          else np.asarray(available, dtype=bool).copy())
        if self.category.size != n_items or self.available.size != n_items:
            raise ValueError("category and available need one entry per item")
        u, i, t, b = dedupe(data.user, data.item, data.time, data.basket)
        self._fit_ranker(u, i, t, b, progress)
        if progress:
            progress("statistics", 0, 1)
        self.stats = item_stats(u, i, t, b, n_users, n_items,
                                shrink=cfg.shrink, neighbours=cfg.neighbours,
                                rank_decay=cfg.features.rank_decay, ease_reg=cfg.ease_reg,
                           buyers_per_item=cfg.buyers_per_item, factors=cfg.factors,
                           clusters=cfg.clusters, member_row_items=cfg.member_row_items)
        self.history = HistoryStore(n_users, u, i, t, b)
        self._fit_groups(data, t.max() if t.size else 0.0)
        self.trained_at = float(t.max()) if t.size else 0.0
        if progress:
            progress("statistics", 1, 1)
        return self

    def _fit_ranker(self, u: np.ndarray, i: np.ndarray, t: np.ndarray, b: np.ndarray,
                    progress: Progress | None) -> None:
        """Learn to predict held-out orders from the history before them.

        Two kinds of examples: each user's last order held out from their
        earlier history (asked at that order's time), and, with
        ``window_days``, everything bought in the last ``window_days`` days
        held out from the lines before them (asked at the cut): a request
        answered for the coming weeks rather than for the very next basket.
        """
        cfg = self.config
        held = _last_orders(u, b)
        if not held.any() or held.all():
            self.ranker_all = self.ranker_new = None  # too little data: fall back to fixed weights
            return
        parts = self._order_examples(u, i, t, b, held, progress)
        orders = len(parts)
        if cfg.window_days > 0 and cfg.window_for:
            parts += self._window_examples(u, i, t, b, progress)
        # One stack of every example, the windows' requests numbered after the last orders'. The
        # "all" ranker reads it as it is; the "new" rows are copied from it after that fit. (Stacked
        # window by window and then per ranker, the rows were held about four times over.)
        offsets = np.cumsum([0] + [int(p[5].max()) + 1 if p[5].size else 0 for p in parts])
        sizes, part = [p[5].size for p in parts], np.arange(len(parts))
        window = np.repeat(part >= orders, sizes)
        # The earlier orders' examples teach the "all" ranker only: on UCI's validation split they
        # lifted its cells 0.2-0.8% and cost the "new" ones up to 2.7% (order_cuts=0 against 1).
        earlier = np.repeat((part > 0) & (part < orders), sizes)
        x = np.vstack([p[0] for p in parts])
        y, bought, w_all, w_new = (np.concatenate([p[j] for p in parts]) for j in range(1, 5))
        q = np.concatenate([p[5] + offsets[n] for n, p in enumerate(parts)])
        del parts
        rows = ~window if cfg.window_for not in ("all", "both") else slice(None)
        self.ranker_all = self._learn(x[rows], y[rows], cfg.interactions,
                                      w_all[rows] if cfg.user_weights in ("all", "both") else None,
                                      cfg.tree_blend, q[rows] if cfg.listwise_all else None)
        rows = ~bought & ~earlier & (~window if cfg.window_for not in ("new", "both") else True)
        xn, yn, wn, qn = x[rows], y[rows], w_new[rows], q[rows]
        del x
        self.ranker_new = self._learn(xn, yn, False, wn if cfg.user_weights in ("new", "both") else None,
                                      cfg.tree_blend_new)
        if cfg.listwise_new > 0 and isinstance(self.ranker_new, TreeRanker) and listwise_available():
            self.ranker_new = self._add_listwise(self.ranker_new, xn, yn, qn, cfg.listwise_new)

    def _order_examples(self, u: np.ndarray, i: np.ndarray, t: np.ndarray, b: np.ndarray,
                        held: np.ndarray, progress: Progress | None) -> list[Examples]:
        """Examples of the next-basket question: each user's last order held out (``held``), then
        with it gone the order before, ``order_cuts`` times or (0) until they hold ``ranker_users``
        requests; automatically, a shop with too few bought items for trees keeps the last orders
        alone (as with the windows). Each part numbers its requests from 0."""
        cfg = self.config
        parts = [self._examples(u, i, t, b, held, None, progress)]
        requests = int(parts[0][5].max()) + 1 if parts[0][5].size else 0
        keep = np.ones(u.size, dtype=bool)
        lines = np.arange(u.size)
        for _ in range(1, cfg.order_cuts or MAX_WINDOWS):
            if not cfg.order_cuts and (requests >= cfg.ranker_users or parts[0][1].sum() < cfg.tree_min_positives):
                break
            keep[lines[held]] = False
            lines = np.flatnonzero(keep)
            lu, li, lt, lb = u[lines], i[lines], t[lines], b[lines]
            held = _last_orders(lu, lb)
            if not held.any():
                break
            part = self._examples(lu, li, lt, lb, held, None, progress)
            if not part[5].size:
                break
            requests += int(part[5].max()) + 1
            parts.append(part)
        return parts

    def _window_examples(self, u: np.ndarray, i: np.ndarray, t: np.ndarray, b: np.ndarray,
                         progress: Progress | None) -> list[Examples]:
        """Examples of the window question, window after window back from the last line: each
        holds out its ``window_days`` from the lines before it (later lines unseen), asked at its
        start. ``window_cuts`` windows, or (0) until they hold ``ranker_users`` requests; none
        when no window has lines both before and in it. Each numbers its requests from 0."""
        cfg = self.config
        parts: list[Examples] = []
        end = float(t.max())
        # A shop whose window has too few bought items for trees keeps one window: its earlier
        # windows ask the same few members again on shorter histories, and on the hand-made shop
        # of the tests the linear ranker then put the weaker bought-with item first.
        requests = positives = 0
        for _ in range(cfg.window_cuts or MAX_WINDOWS):
            if not cfg.window_cuts and parts and (requests >= cfg.ranker_users or positives < cfg.tree_min_positives):
                break  # enough requests, or a shop too small for trees
            before = t <= end
            # The latest window sees every line: no copy of them (30 M lines on the 1M chain).
            lu, li, lt, lb = (u, i, t, b) if before.all() else (u[before], i[before], t[before], b[before])
            cut = end - cfg.window_days * DAY
            window = lt > cut
            end = cut
            if not window.any() or window.all():
                continue
            part = self._examples(lu, li, lt, lb, window, cut, progress)
            if not part[5].size:
                continue
            requests += int(part[5].max()) + 1
            positives += int(part[1].sum())
            parts.append(part)
        if parts:
            log.info("ranker examples: %d window(s) of %g days, %d requests, %d bought", len(parts),
                     cfg.window_days, requests, positives)
        return parts

    def _examples(self, u: np.ndarray, i: np.ndarray, t: np.ndarray, b: np.ndarray,
                  held: np.ndarray, now: float | None, progress: Progress | None) -> Examples:
        """Feature rows, labels (bought in the held-out lines), "bought before" and two row weights.

        Statistics come from the lines not held out only, so no feature sees
        the answer. ``now`` None: each user is asked at their first held-out line's time.
        The weights are 1 / the user's number of held-out items (all of them, and those
        new to the user): every user then weighs the same in the fit, as in a per-user
        recall, instead of users with big baskets drowning the others.
        """
        cfg = self.config
        rest = ~held
        stats = item_stats(u[rest], i[rest], t[rest], b[rest], self.n_users, self.n_items,
                           shrink=cfg.shrink, neighbours=cfg.neighbours,
                           rank_decay=cfg.features.rank_decay, ease_reg=cfg.ease_reg,
                           buyers_per_item=cfg.buyers_per_item, factors=cfg.factors,
                           clusters=cfg.clusters, member_row_items=cfg.member_row_items)
        hist = HistoryStore(self.n_users, u[rest], i[rest], t[rest], b[rest])
        known = np.zeros(self.n_users, dtype=bool)
        known[u[rest]] = True
        users = np.unique(u[held])
        users = users[known[users]]
        if users.size > cfg.ranker_users:
            rng = np.random.default_rng(cfg.seed)
            users = np.sort(rng.choice(users, cfg.ranker_users, replace=False))
        hu, hi, ht = u[held], i[held], t[held]
        start = np.searchsorted(hu, users)
        end = np.searchsorted(hu, users, side="right")
        xs, ys, bs, was, wns, qs = [], [], [], [], [], []
        for n, (user, s, e) in enumerate(zip(users, start, end, strict=False)):
            at = float(ht[s]) if now is None else now
            past = hist.get(int(user))
            c = candidates(past, int(user), at, stats, cfg.features, self._category())
            target = np.unique(hi[s:e])
            xs.append(c.x)
            ys.append(np.isin(c.items, target))
            bs.append(c.bought)
            fresh = int((~np.isin(target, past.item)).sum())
            was.append(np.full(c.items.size, 1.0 / target.size))
            wns.append(np.full(c.items.size, 1.0 / max(fresh, 1)))
            qs.append(np.full(c.items.size, n, dtype=np.int64))
            if progress and n % 200 == 0:
                progress("ranker examples", n, users.size)
        if progress:
            progress("ranker examples", users.size, users.size)
        if not xs:
            empty = np.zeros(0)
            return (np.zeros((0, N_FEATURES)), empty.astype(bool), empty.astype(bool), empty, empty,
                    empty.astype(np.int64))
        return (np.vstack(xs), np.concatenate(ys), np.concatenate(bs), np.concatenate(was),
                np.concatenate(wns), np.concatenate(qs))

    def _learn(self, x: np.ndarray, y: np.ndarray, interactions: bool,
               weight: np.ndarray | None = None, blend: float = 1.0,
               query: np.ndarray | None = None) -> Ranker | None:
        """The configured kind of ranker on these examples (None without both labels).

        With ``query`` (the request of each row) the trees are fit listwise, if LightGBM loads.
        """
        cfg = self.config
        if not 0 < y.sum() < y.size:
            return None
        if (query is not None and cfg.ranker == "trees" and y.sum() >= cfg.tree_min_positives
                and listwise_available()):
            return self._fit_listwise(x, y, query, cfg.tree_iter, cfg.tree_rate, cfg.tree_screen,
                                      cfg.listwise_blend)
        # Trees need many bought examples to split on; a small shop gets the linear ranker.
        if cfg.ranker == "trees" and y.sum() >= cfg.tree_min_positives:
            return fit_trees(x, y, iterations=cfg.tree_iter, leaves=cfg.tree_leaves,
                             max_depth=cfg.tree_depth, learning_rate=cfg.tree_rate,
                             min_leaf=cfg.tree_min_leaf, negatives=cfg.ranker_negatives,
                             screen_keep=cfg.tree_screen, blend=blend, seed=cfg.seed,
                             weight=weight)
        pairs = quadratic_pairs(INTERACTING) if interactions else None
        return fit_ranker(x, y, pairs, negatives=cfg.ranker_negatives, seed=cfg.seed, weight=weight)

    def _fit_listwise(self, x: np.ndarray, y: np.ndarray, query: np.ndarray, trees: int, rate: float,
                      screen_keep: int, blend: float) -> TreeRanker:
        """LambdaRank trees with the configured shape, leaf size and share of not-bought rows."""
        cfg = self.config
        return fit_lambdarank(x, y, query, iterations=trees, leaves=cfg.tree_leaves, max_depth=cfg.tree_depth,
                              learning_rate=rate, min_leaf=cfg.tree_min_leaf, negatives=cfg.ranker_negatives,
                              screen_keep=screen_keep, blend=blend, seed=cfg.seed)

    def _add_listwise(self, trees: TreeRanker, x: np.ndarray, y: np.ndarray, query: np.ndarray,
                      weight: float) -> TreeRanker:
        """The pointwise trees plus LambdaRank trees fit on the same requests, the latter scaled to
        the former's spread of scores on these rows and then weighed (an ensemble served as one
        ranker: each kind of fit gets right what the other misses)."""
        cfg = self.config
        try:
            listwise = self._fit_listwise(x, y, query, cfg.listwise_new_trees, cfg.listwise_new_rate, 0, 0.0)
        except ValueError:  # no request with both a bought and a not-bought row
            return trees
        sample = x[:: max(1, x.shape[0] // 20_000)]
        spread_listwise = float(listwise.score(sample).std())
        if spread_listwise <= 0:  # trees that learned nothing
            return trees
        return add_trees(trees, listwise, weight * float(trees.score(sample).std()) / spread_listwise)

    def _fit_groups(self, data: Interactions, end: float) -> None:
        """Best-sellers per store / city / segment value, recent buyers weigh more."""
        cfg = self.config
        w = np.exp2(-(end - np.asarray(data.time, dtype=np.float64)) / (cfg.group_half_life_days * DAY))
        item = np.asarray(data.item, dtype=np.int64)
        self.global_pop = np.bincount(item, weights=w, minlength=self.n_items)
        self.groups = {}
        for name, values in data.groups.items():
            v = np.asarray(values, dtype=np.int64)
            ok = v >= 0
            n_vals = int(v[ok].max()) + 1 if ok.any() else 0
            counts = sp.csr_matrix((w[ok], (v[ok], item[ok])), shape=(n_vals, self.n_items))
            counts.sum_duplicates()
            self.groups[name] = GroupPopularity(counts, np.asarray(counts.sum(axis=1)).ravel())


    # ------------------------------------------------------------------ updates
    def add_order(self, user: int, items: Sequence[int], time: float, basket: int) -> None:
        """Record a new order so the user's next recommendations reflect it (no retraining).

        Items unknown to the model (added to the catalogue after training) are
        skipped until the next retraining; the same basket twice counts once.
        """
        self._require_fit()
        arr = np.asarray(list(items), dtype=np.int64)
        arr = arr[(arr >= 0) & (arr < self.n_items)]
        if arr.size:
            self.history.add(int(user), arr, float(time), int(basket))  # type: ignore[union-attr]

    def set_catalog(self, category: np.ndarray | None = None,
                    available: np.ndarray | None = None) -> None:
        """Replace item categories and/or availability (stock, still sold) without retraining."""
        if category is not None:
            if np.asarray(category).size != self.n_items:
                raise ValueError("category needs one entry per item")
            self.category = np.asarray(category, dtype=np.int64).copy()
        if available is not None:
            if np.asarray(available).size != self.n_items:
                raise ValueError("available needs one entry per item")
            self.available = np.asarray(available, dtype=bool).copy()

    # ------------------------------------------------------------------ serving
    def recommend(self, user: int, k: int = 10, *, now: float | None = None,
                  exclude_bought: bool = False, categories: Sequence[int] | None = None,
                  allowed: np.ndarray | None = None, exclude: Sequence[int] | None = None,
                  context: Mapping[str, int] | None = None) -> list[Scored]:
        """Up to k available items for a user, best first, each with a reason.

        ``exclude_bought`` asks for discovery only; ``categories`` narrows to
        those category ids; ``allowed`` is an extra per-item mask; ``context``
        (e.g. ``{"store": 3, "segment": 1}``) picks best-sellers for users
        without a history.
        """
        self._require_fit()
        if k <= 0:
            return []
        now = _time.time() if now is None else float(now)
        mask = self.available.copy()
        if categories is not None:
            mask &= np.isin(self.category, np.asarray(list(categories), dtype=np.int64))
        if allowed is not None:
            mask &= np.asarray(allowed, dtype=bool)
        if exclude is not None:
            ex = np.asarray(list(exclude), dtype=np.int64)
            mask[ex[(ex >= 0) & (ex < self.n_items)]] = False
        hist = self.history.get(int(user))  # type: ignore[union-attr]
        if hist.empty:
            return self._popular(k, mask, context)
        c = self._candidates(hist, int(user), now)
        keep = mask[c.items] & ~(c.bought if exclude_bought else np.zeros(c.items.size, bool))
        ranker = self.ranker_new if exclude_bought else self.ranker_all
        if isinstance(ranker, TreeRanker):
            scores, keep = ranker.shortlist(c.x, keep, k)
        else:
            scores = ranker.score(c.x) if ranker is not None else _fallback_score(c.x)
        picked = _top_k(scores, keep, k)
        out = self._explain(c, picked, scores)
        if len(out) < k:  # narrow categories can leave too few candidates: fill with best-sellers
            mask[c.items[picked]] = False
            if exclude_bought:
                mask[c.profile_items] = False
            out += self._popular(k - len(out), mask, context)
        return out

    def prepare(self) -> None:
        """Build the indexes requests share (the factors by length, each item group's best items,
        the trending index, the last window's sales) and compile the request's loops now, so that
        the first request after a model is loaded does not pay for them."""
        st = self._require_fit()
        st.factors_by_length()
        st.trend_index(TREND_DAYS, self.config.features.trend_candidates)
        for days in (TREND_DAYS, RECENT_DAYS):  # the window every request after training reads
            st.recent_counts(st.end_time + 1.0, days)
        n = self.config.features.cf_candidates
        for group in (self._category(), st.clusters if st.clusters.size else None):
            if group is not None:
                st.group_best(group, n)
        # The request's compiled loops (kernels.py): compiled, or read from numba's cache, here
        # rather than in a shopper's first request (the first compile on a machine takes seconds).
        # One request in each mode: the rankers may differ, and a discovery pick has a "bought
        # with" reason to find (a re-buy has none).
        members = np.flatnonzero(np.diff(self.history.indptr))  # type: ignore[union-attr]
        if members.size:
            for discovery in (False, True):
                self.recommend(int(members[0]), 1, now=st.end_time + 1.0, exclude_bought=discovery)

    def _candidates(self, hist: UserHistory, user: int, now: float) -> Candidates:
        """The member's candidates and features, from the cache when asked again within the hour."""
        if self.cache_size <= 0:
            return candidates(hist, user, now, self.stats, self.config.features,  # type: ignore[arg-type]
                              self._category())
        key = (user, int(hist.item.size), int(now // 3600))  # a new order changes the size
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        c = candidates(hist, user, now, self.stats, self.config.features,  # type: ignore[arg-type]
                       self._category())
        with self._cache_lock:
            self._cache[key] = c
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return c

    @property
    def category(self) -> np.ndarray:
        """The category code of each item (-1: none)."""
        return self._category_codes

    @category.setter
    def category(self, codes: np.ndarray) -> None:
        self._category_codes = codes
        self._category_known = bool((codes >= 0).any())  # once, not on every request

    def _category(self) -> np.ndarray | None:
        """The item categories the features use (None when none is known or they are off)."""
        if not self.config.use_category or not self._category_known:
            return None
        return self._category_codes

    def _explain(self, c: Candidates, picked: np.ndarray, scores: np.ndarray) -> list[Scored]:
        """Attach a reason to each picked candidate: re-buy, bought-with (and which item), or trending."""
        st = self.stats
        assert st is not None
        items = c.items[picked]
        fresh = ~c.bought[picked]
        anchors = np.full(items.size, -1, dtype=np.int64)
        if fresh.any() and c.profile_items.size:
            rows, weights = c.profile_items, c.profile_weights
            if rows.size > ANCHORS:  # a long history: the reason names one of its strongest items
                strong = np.argpartition(-weights, ANCHORS - 1)[:ANCHORS]
                rows, weights = rows[strong], weights[strong]
            cols = items[fresh]
            # How much each past item pulls each new item up, through the item-item signals.
            pull = st.pull(rows, cols) * weights[:, None]
            best = pull.argmax(axis=0)
            anchors[fresh] = np.where(pull.max(axis=0) > 0, rows[best], -1)
        out = []
        for j, item, anchor, new in zip(picked, items, anchors, fresh, strict=False):
            if not new:
                out.append(Scored(int(item), float(scores[j]), REPEAT, int(item)))
            elif anchor >= 0:
                out.append(Scored(int(item), float(scores[j]), BOUGHT_WITH, int(anchor)))
            else:
                out.append(Scored(int(item), float(scores[j]), POPULAR, -1))
        return out

    def _popular(self, k: int, mask: np.ndarray, context: Mapping[str, int] | None) -> list[Scored]:
        """Best-sellers smoothed from everyone down to the most specific group known."""
        total = self.global_pop.sum()
        p = self.global_pop / total if total > 0 else np.full(self.n_items, 1.0 / max(self.n_items, 1))
        level = ""
        m = self.config.group_prior
        for name in ("city", "store", "segment"):  # general to specific
            value = (context or {}).get(name)
            g = self.groups.get(name)
            if value is None or g is None or not 0 <= value < g.counts.shape[0]:
                continue
            row = np.asarray(g.counts[value].todense()).ravel()
            p = (row + m * p) / (g.totals[value] + m)
            if g.totals[value] >= m:
                level = name
        picked = _top_k(p, mask, k)
        return [Scored(int(j), float(p[j]), POPULAR, -1, level) for j in picked]

    def _require_fit(self) -> ItemStats:
        if self.stats is None or self.history is None:
            raise RuntimeError("the recommender is not trained yet")
        return self.stats


def serve_single_threaded() -> None:
    """One BLAS thread in this (serving) process, for good.

    A request's matrix products are small (the member's profile through the latent factors:
    0.12 ms on one thread); on a busy server the second BLAS thread is often not running, and
    the product waited for it: 0.64 ms a request on average on a loaded 2-core machine.
    Requests run side by side instead. Training runs in its own process (the CLI) with every thread.
    """
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(user_api="blas").limit(limits=1)


def _fallback_score(x: np.ndarray) -> np.ndarray:
    """Without enough data to learn weights: own orders first, then similarity, then trend."""
    return 10.0 * x[:, 3] + x[:, 0] + 0.1 * x[:, 7] + 0.01 * x[:, 9]


def _top_k(scores: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best kept scores, best first (ties: lower index first)."""
    return top_k(np.ascontiguousarray(scores, dtype=np.float64), np.ascontiguousarray(keep, dtype=np.bool_), int(k))
