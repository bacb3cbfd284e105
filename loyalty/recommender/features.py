"""Candidate items and their features for one user at one moment.

Training (on held-out orders) and serving call the same function, so what
the ranker learned is exactly what it is asked about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loyalty.recommender.data import DAY, UserHistory
from loyalty.recommender.stats import ItemStats

FEATURES = (
    "bought",  # the user bought the item before
    "log_orders",  # log(1 + orders containing it)
    "order_share",  # share of the user's orders containing it
    "recent_share",  # same, orders weighted by a short half-life
    "steady_share",  # same, long half-life
    "log_days_since",  # log(1 + days since the user last bought it)
    "repeat_logit",  # how often buyers of this item buy it again (logit)
    "log_cf_user",  # similarity to the user's decayed purchase profile
    "log_cf_next",  # what follows the user's recent orders
    "log_trend",  # recent popularity
    "log_buyers",  # all-time distinct buyers
    "log_user_orders",  # bought x log(1 + the user's orders): trust in a long own history
)
N_FEATURES = len(FEATURES)


@dataclass(frozen=True)
class FeatureConfig:
    """Half-lives and candidate pool sizes."""

    short_half_life_days: float = 30.0
    long_half_life_days: float = 180.0
    profile_half_life_days: float = 90.0
    cf_candidates: int = 100
    trend_candidates: int = 50


@dataclass(frozen=True)
class Candidates:
    """Candidate items for one request, with their feature rows."""

    items: np.ndarray
    bought: np.ndarray
    x: np.ndarray
    profile_items: np.ndarray  # the user's distinct items (anchors for "bought with" reasons)
    profile_weights: np.ndarray


def _top(values: np.ndarray, n: int) -> np.ndarray:
    if n >= values.size:
        return np.flatnonzero(values > 0)
    idx = np.argpartition(-values, n)[:n]
    return idx[values[idx] > 0]


def candidates(hist: UserHistory, now: float, stats: ItemStats, trend_top: np.ndarray,
               cfg: FeatureConfig) -> Candidates:
    """Bought items, the best collaborative and trending items, and a feature row for each."""
    n_items = stats.buyers.size
    uniq, inv = np.unique(hist.item, return_inverse=True)
    age = np.maximum(now - hist.time, 0.0) / DAY
    d_short = np.exp2(-age / cfg.short_half_life_days)
    d_long = np.exp2(-age / cfg.long_half_life_days)
    d_prof = np.exp2(-age / cfg.profile_half_life_days)
    orders = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    rec = np.bincount(inv, weights=d_short, minlength=uniq.size)
    steady = np.bincount(inv, weights=d_long, minlength=uniq.size)
    prof = np.bincount(inv, weights=d_prof, minlength=uniq.size)
    last = np.zeros(uniq.size)
    np.maximum.at(last, inv, hist.time)

    # Order-level totals turn counts into shares comparable across users.
    _, first = np.unique(hist.basket, return_index=True)
    b_age = age[first]
    n_orders = float(first.size)
    tot_short = np.exp2(-b_age / cfg.short_half_life_days).sum()
    tot_long = np.exp2(-b_age / cfg.long_half_life_days).sum()

    cf_user = np.zeros(n_items)
    cf_next = np.zeros(n_items)
    if uniq.size:
        w = prof / prof.sum()
        cf_user = np.asarray(stats.co_user[uniq].T @ w).ravel()
        wr = rec / rec.sum() if rec.sum() > 0 else w
        cf_next = np.asarray(stats.co_next[uniq].T @ wr).ravel()

    items = np.unique(np.concatenate([
        uniq,
        _top(cf_user, cfg.cf_candidates),
        _top(cf_next, cfg.cf_candidates),
        trend_top[: cfg.trend_candidates],
    ])).astype(np.int64)
    pos = np.searchsorted(uniq, items)
    pos_c = np.minimum(pos, max(uniq.size - 1, 0))
    bought = (uniq.size > 0) & (uniq[pos_c] == items) if uniq.size else np.zeros(items.size, bool)
    b = bought.astype(np.float64)

    def own(values: np.ndarray) -> np.ndarray:
        return np.where(bought, values[pos_c], 0.0) if uniq.size else np.zeros(items.size)

    rr = np.clip(stats.repeat_rate[items], 1e-4, 1.0 - 1e-4)
    x = np.empty((items.size, N_FEATURES))
    x[:, 0] = b
    x[:, 1] = np.log1p(own(orders))
    x[:, 2] = own(orders) / max(n_orders, 1.0)
    x[:, 3] = own(rec) / max(tot_short, 1e-9)
    x[:, 4] = own(steady) / max(tot_long, 1e-9)
    x[:, 5] = b * np.log1p(np.maximum(now - own(last), 0.0) / DAY)
    x[:, 6] = b * np.log(rr / (1.0 - rr))
    x[:, 7] = np.log(cf_user[items] + 1e-4)
    x[:, 8] = np.log(cf_next[items] + 1e-4)
    x[:, 9] = np.log1p(stats.trend[items])
    x[:, 10] = np.log1p(stats.buyers[items])
    x[:, 11] = b * np.log1p(n_orders)
    return Candidates(items, bought, x, uniq, prof)
