"""Candidate items and their features for one user at one moment.

Training (on held-out orders) and serving call the same function, so what
the ranker learned is exactly what it is asked about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loyalty.recommender.data import UserHistory
from loyalty.recommender.kernels import (
    EPS,
    feature_rows,
    group_columns,
    group_top,
    member_items,
    union_with_own,
)
from loyalty.recommender.sales import RECENT_DAYS, TREND_DAYS
from loyalty.recommender.scores import ScoreSheet
from loyalty.recommender.stats import PROBE_ITEMS, ItemStats

FEATURES = (
    "bought",  # the user bought the item before
    "log_orders",  # log(1 + orders containing it)
    "order_share",  # share of the user's orders containing it
    "recent_share",  # same, orders weighted by a short half-life
    "steady_share",  # same, long half-life
    "log_days_since",  # bought x log(1 + days since the user last bought it)
    "repeat_logit",  # bought x how often buyers of this item buy it again (logit)
    "log_cf_user",  # cosine similarity to the user's decayed purchase profile
    "log_cf_next",  # what tends to follow the user's recent orders
    "log_recent_30",  # purchase events in the 30 days before now
    "log_buyers",  # all-time distinct buyers
    "log_user_orders",  # bought x log(1 + the user's orders): trust in a long own history
    "log_cf_ease",  # EASE regression score of the user's decayed profile
    "user_repeat",  # bought x the share of the user's purchases that were re-buys
    "bought_recent",  # bought x log_recent_30
    "rank_share",  # share of the user's orders containing it, the latest orders weigh most
    "gap_ratio",  # bought x log(1 + days since last purchase / the item's typical gap)
    "log_recent_7",  # purchase events in the 7 days before now
    "in_last_order",  # the item was in the user's latest order
    "log_cf_knn",  # what the most similar customers buy (TIFU-kNN style)
    "log_days_idle",  # log(1 + days since the user's latest order): next basket or weeks ahead
    "cat_share",  # share of the user's decayed purchases in the item's category
    "log_cat_pop",  # log(cat_share x the item's share of its category's buyers)
    "cf_svd",  # the user's decayed profile through the latent item factors (PureSVD)
    "own_gap_ratio",  # bought x log(1 + days since last purchase / the user's own interval for it)
    "log_own_gap",  # bought x log(1 + the user's own days between purchases of it)
    "cluster_share",  # cat_share over the learned item groups (ItemStats.clusters)
    "log_cluster_pop",  # log_cat_pop over the learned item groups
    "log_cf_flat",  # log_cf_user with every item the user bought counting once (no decay)
    # The collaborative scores against the best of the user's new candidates: trees cannot
    # compare rows within a request, and a score's level differs from one member to the next.
    "rel_cf_user",
    "rel_cf_next",
    "rel_cf_ease",
    "rel_cf_knn",
    "rel_cf_svd",
    "rel_cf_flat",
)
N_FEATURES = len(FEATURES)
# Features whose pairwise products the main ranker uses when Config.interactions is on.
INTERACTING = tuple(FEATURES.index(f) for f in (
    "log_orders", "order_share", "recent_share", "log_days_since", "repeat_logit", "log_recent_30",
    "log_cf_ease", "user_repeat", "rank_share", "gap_ratio", "log_cf_knn",
))
# The columns the rel_ features restate (in that order).
_RELATIVE_COLUMNS = np.array([FEATURES.index(f) for f in (
    "log_cf_user", "log_cf_next", "log_cf_ease", "log_cf_knn", "cf_svd", "log_cf_flat",
)])


# The collaborative scores a request spreads over the catalogue (rows of the request's ScoreSheet,
# in the order kernels.feature_rows reads them).
_SCORES = (_USER, _FLAT, _NEXT, _EASE, _KNN) = range(5)


@dataclass(frozen=True)
class FeatureConfig:
    """Half-lives and candidate pool sizes."""

    short_half_life_days: float = 30.0
    long_half_life_days: float = 180.0
    profile_half_life_days: float = 90.0
    rank_decay: float = 0.8
    user_neighbours: int = 300
    cf_candidates: int = 100
    trend_candidates: int = 50
    svd_candidates: int = 100
    # The member's strongest items that look for similar customers (the search's cost grows with
    # it). UCI validation, three seeds, against 24: within +-1% in every cell but the 30-day "all"
    # one, -1.2% NDCG@10 there; the synthetic chain and the large catalogue: within +-0.5%.
    probe_items: int = PROBE_ITEMS
    # The item-item signals (cf_user and cf_flat, cf_next, cf_ease) read one matrix row per item
    # the member bought, except the items whose decayed weight there is under this share of the
    # member's strongest (a one-off bought over a year ago, in the profile's 90-day decay). Long
    # histories read a quarter of the rows (1M-member chain, 500 longest: 17,600 -> 3,600
    # entries a matrix), a request x0.82. Validation split, NDCG@10 against no floor: large
    # catalogue +0.4 / -0.1 / 0.0 / -0.6%, UCI -0.4 / -1.5 / -0.5 / +0.3% (last basket all,
    # new; 30 days all, new).
    spread_floor: float = 0.05


@dataclass(frozen=True)
class Candidates:
    """Candidate items for one request, with their feature rows."""

    items: np.ndarray
    bought: np.ndarray
    x: np.ndarray
    profile_items: np.ndarray  # the user's distinct items (anchors for "bought with" reasons)
    profile_weights: np.ndarray


@dataclass(frozen=True)
class _Affinity:
    """The user's decayed purchase share per group, and the items it puts forward."""

    group: np.ndarray | None
    share: np.ndarray  # per group value
    top: np.ndarray  # candidate items: the best of the user's groups by share x in-group share

    def fill(self, x: np.ndarray, col: int, items: np.ndarray, stats: ItemStats) -> None:
        """x[:, col] = the share, x[:, col + 1] = log(share x in-group share), for the given items."""
        if self.group is None:
            x[:, col], x[:, col + 1] = 0.0, np.log(EPS)
        else:
            group_columns(x, col, items, self.group, self.share, stats.in_category(self.group))


def _group_affinity(group: np.ndarray | None, uniq: np.ndarray, prof: np.ndarray, stats: ItemStats,
                    n: int) -> _Affinity:
    """The user's share of purchases per group and the n items with the highest share x in-group
    share, read from each of the user's groups' own best items (never the whole catalogue)."""
    if group is None or not uniq.size:
        return _Affinity(None, np.zeros(0), np.zeros(0, dtype=np.int64))
    indptr, best = stats.group_best(group, n)  # cached: no pass over the catalogue per request
    if not best.size:  # no item has a group
        return _Affinity(None, np.zeros(0), np.zeros(0, dtype=np.int64))
    share, top = group_top(group, uniq, prof, indptr, best, stats.in_category(group), n)
    return _Affinity(group, share, top)


def candidates(hist: UserHistory, user: int, now: float, stats: ItemStats, cfg: FeatureConfig,
               category: np.ndarray | None = None) -> Candidates:
    """Bought items, the best collaborative, in-category and trending items, and a feature row for each.

    ``category`` (one integer per item, -1 unknown) adds the user's favourite
    categories' best-sellers to the candidates; without it the category features are 0.
    """
    sheet = stats.score_sheet(len(_SCORES))
    try:
        return _candidates(hist, user, now, stats, cfg, category, sheet)
    finally:
        sheet.clear()


def _candidates(hist: UserHistory, user: int, now: float, stats: ItemStats, cfg: FeatureConfig,
                category: np.ndarray | None, sheet: ScoreSheet) -> Candidates:
    half_lives = np.array([cfg.short_half_life_days, cfg.long_half_life_days, cfg.profile_half_life_days])
    uniq, own, member = member_items(hist.item, hist.time, hist.basket, now, half_lives, cfg.rank_decay,
                                     stats.gap_days)
    rec, prof, rank_share = own[:, 1], own[:, 7], own[:, 4]
    taste = np.zeros(stats.factors.shape[1], dtype=np.float32)  # the profile in factor space
    tops = []
    if uniq.size:
        w = prof / prof.sum()
        wr = rec / rec.sum() if rec.sum() > 0 else w
        # The decayed profile and, undecayed and summed like item-kNN (on steady tastes it ranks
        # discoveries better), every item bought once: one pass over the same co_user rows.
        # Each signal leaves out the rows under the floor of its own weights.
        strong = w >= cfg.spread_floor * w.max()
        sheet.add(stats.co_user, uniq[strong], _USER, w[strong], second=(_FLAT, np.ones(int(strong.sum()))))
        recent = wr >= cfg.spread_floor * wr.max()
        sheet.add(stats.co_next, uniq[recent], _NEXT, wr[recent])
        sheet.add(stats.ease, uniq[strong], _EASE, w[strong])
        similar, weight = stats.neighbours(uniq, rank_share, user, cfg.user_neighbours, cfg.probe_items)
        sheet.add(stats.user_unit, similar, _KNN, weight)
        tops = [sheet.top(s, cfg.cf_candidates) for s in (_USER, _NEXT, _EASE, _KNN)]
        if stats.factors.shape[1]:
            taste = w.astype(np.float32) @ stats.factors[uniq]
            tops.append(stats.factor_top(taste, cfg.svd_candidates))
    by_cat = _group_affinity(category, uniq, prof, stats, cfg.cf_candidates)
    by_cluster = _group_affinity(stats.clusters if stats.clusters.size else None, uniq, prof, stats,
                                 cfg.cf_candidates)
    items, pos, bought = union_with_own(uniq, np.concatenate([
        *tops, by_cat.top, by_cluster.top, stats.trending(now, TREND_DAYS, cfg.trend_candidates),
    ]).astype(np.int64))
    x = np.empty((items.size, N_FEATURES))
    by_cat.fill(x, 21, items, stats)
    x[:, 23] = stats.factors[items] @ taste if taste.size else 0.0
    by_cluster.fill(x, 26, items, stats)
    recent = np.vstack((stats.recent_counts(now, TREND_DAYS, items), stats.recent_counts(now, RECENT_DAYS, items)))
    feature_rows(x, items, pos, bought, own, member, now, *stats.item_terms(), stats.gap_days, recent,
                 sheet.values, _RELATIVE_COLUMNS)
    return Candidates(items, bought, x, uniq, prof)
