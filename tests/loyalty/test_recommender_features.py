"""Candidate features the rankers read: the undecayed item-kNN score and the per-request relative scores."""

from __future__ import annotations

import numpy as np
import pytest

from loyalty.recommender.data import DAY, HistoryStore
from loyalty.recommender.features import FEATURES, FeatureConfig, candidates
from loyalty.recommender.stats import dedupe, item_stats

NOW = 400 * DAY
OLD_ITEM, NEW_ITEM, WITH_OLD, WITH_NEW, MEMBER = 0, 1, 2, 3, 0


def _stats_and_member():
    """Shoppers who buy item 0 with item 2 and item 1 with item 3 (the same number of each);
    member 0 bought item 0 almost a year ago and item 1 yesterday."""
    u, i, t, b = [], [], [], []
    for n in range(1, 41):
        pair = (OLD_ITEM, WITH_OLD) if n % 2 else (NEW_ITEM, WITH_NEW)
        for item in pair:
            u.append(n)
            i.append(item)
            t.append(float(n * DAY))
            b.append(n)
    u += [MEMBER, MEMBER]
    i += [OLD_ITEM, NEW_ITEM]
    t += [NOW - 330 * DAY, NOW - DAY]
    b += [100, 101]
    lines = dedupe(np.array(u), np.array(i), np.array(t), np.array(b))
    stats = item_stats(*lines, 41, 6, shrink=5.0, neighbours=10, rank_decay=0.8)
    history = HistoryStore(41, *lines)
    return stats, history.get(MEMBER)


def _column(c, name: str, item: int) -> float:
    return float(c.x[np.flatnonzero(c.items == item)[0], FEATURES.index(name)])


def test_flat_item_knn_score_counts_an_old_purchase_as_much_as_a_recent_one() -> None:
    stats, hist = _stats_and_member()
    c = candidates(hist, MEMBER, NOW, stats, FeatureConfig())
    assert {WITH_OLD, WITH_NEW} <= set(c.items.tolist())
    # The decayed profile puts what goes with yesterday's item first ...
    assert _column(c, "log_cf_user", WITH_NEW) > _column(c, "log_cf_user", WITH_OLD)
    # ... the flat score, like item-kNN over everything bought, weighs both the same.
    assert np.isclose(_column(c, "log_cf_flat", WITH_NEW), _column(c, "log_cf_flat", WITH_OLD))


def test_relative_scores_put_the_best_new_candidate_at_zero() -> None:
    stats, hist = _stats_and_member()
    c = candidates(hist, MEMBER, NOW, stats, FeatureConfig())
    fresh = ~c.bought
    for name in ("rel_cf_user", "rel_cf_flat", "rel_cf_ease", "rel_cf_svd"):
        rel = c.x[:, FEATURES.index(name)]
        raw = c.x[:, FEATURES.index(name.replace("rel_", "log_") if name != "rel_cf_svd" else "cf_svd")]
        assert np.isclose(rel[fresh].max(), 0.0)
        # The same order as the raw score, shifted by one amount per request.
        assert np.allclose(raw - rel, (raw - rel)[0])
    best = c.items[fresh][np.argmax(c.x[fresh, FEATURES.index("rel_cf_user")])]
    assert best == WITH_NEW


@pytest.mark.parametrize(("days_apart", "floor"), [(0.3, FeatureConfig().spread_floor), (2.0, 0.0), (2.0, 0.05)])
def test_each_feature_is_what_its_definition_says(days_apart: float, floor: float) -> None:
    """The compiled rows (kernels.feature_rows) against the definitions in FEATURES, written out
    per item from the member's own lines: every column but the group and latent-factor ones.
    Baskets 2 days apart span 600 days: old purchases weigh little, and with a floor the
    decayed item-item signals leave their rows out."""
    rng = np.random.default_rng(21)
    n_users, n_items = 60, 25
    u = rng.integers(0, n_users, 1500)
    i = rng.integers(0, n_items, 1500)
    b = rng.integers(0, 300, 1500) + 1000 * u  # baskets within a member
    t = (b % 1000).astype(np.float64) * DAY * days_apart + u * 7.0  # one moment per basket
    lines = dedupe(u, i, t, b)
    stats = item_stats(*lines, n_users, n_items, shrink=5.0, neighbours=10, rank_decay=0.8)
    member = int(np.bincount(lines[0]).argmax())
    hist = HistoryStore(n_users, *lines).get(member)
    now = float(hist.time.max()) + 3.5 * DAY
    cfg = FeatureConfig(spread_floor=floor)
    c = candidates(hist, member, now, stats, cfg)

    def col(name: str) -> np.ndarray:
        return c.x[:, FEATURES.index(name)]

    baskets = np.unique(hist.basket)
    b_time = np.array([hist.time[hist.basket == k][0] for k in baskets])
    rank = np.argsort(np.argsort(-b_time, kind="stable"), kind="stable")  # 0: the latest order
    age = (now - hist.time) / DAY
    b_age = (now - b_time) / DAY
    profile = {j: (2 ** (-age[hist.item == j] / 90.0)).sum() for j in np.unique(hist.item)}
    recent = {j: (2 ** (-age[hist.item == j] / 30.0)).sum() for j in profile}
    w_total, r_total = sum(profile.values()), sum(recent.values())
    # The rows the floored signals read: weight at least floor x the strongest one's.
    recent_rows = [j for j in profile if recent[j] >= floor * max(recent.values())]
    profile_rows = [j for j in profile if profile[j] >= floor * max(profile.values())]
    if floor and days_apart > 1:
        assert len(recent_rows) < len(profile_rows) < len(profile)  # the floor leaves rows out here
    co_user, co_next, ease = (m.toarray() for m in (stats.co_user, stats.co_next, stats.ease))
    rr = np.clip(stats.repeat_rate, 1e-4, 1 - 1e-4)
    assert set(profile) <= set(c.items.tolist())
    for r, item in enumerate(c.items):
        mine = hist.item == item
        cf_user = sum(profile[j] / w_total * co_user[j, item] for j in profile_rows)
        assert np.isclose(col("log_cf_user")[r], np.log(cf_user + 1e-4))
        assert np.isclose(col("log_cf_flat")[r], np.log(sum(co_user[j, item] for j in profile_rows) + 1e-4))
        assert np.isclose(col("log_cf_next")[r],
                          np.log(sum(recent[j] / r_total * co_next[j, item] for j in recent_rows) + 1e-4))
        assert np.isclose(col("log_cf_ease")[r],
                          np.log(sum(profile[j] / w_total * ease[j, item] for j in profile_rows) + 1e-4))
        assert np.isclose(col("log_buyers")[r], np.log1p(stats.buyers[item]))
        assert np.isclose(col("log_days_idle")[r], np.log1p(3.5))
        if not mine.any():
            for name in ("bought", "log_orders", "order_share", "recent_share", "log_days_since",
                         "repeat_logit", "rank_share", "in_last_order", "gap_ratio", "own_gap_ratio"):
                assert col(name)[r] == 0.0, name
            continue
        orders = mine.sum()
        days_since = (now - hist.time[mine].max()) / DAY
        own_gap = ((hist.time[mine].max() - hist.time[mine].min()) / DAY + stats.gap_days[item]) / orders
        in_baskets = np.isin(baskets, hist.basket[mine])
        assert col("bought")[r] == 1.0
        assert np.isclose(col("log_orders")[r], np.log1p(orders))
        assert np.isclose(col("order_share")[r], orders / baskets.size)
        assert np.isclose(col("recent_share")[r], recent[item] / (2 ** (-b_age / 30.0)).sum())
        assert np.isclose(col("steady_share")[r],
                          (2 ** (-age[mine] / 180.0)).sum() / (2 ** (-b_age / 180.0)).sum())
        assert np.isclose(col("log_days_since")[r], np.log1p(days_since))
        assert np.isclose(col("repeat_logit")[r], np.log(rr[item] / (1 - rr[item])))
        assert np.isclose(col("log_user_orders")[r], np.log1p(baskets.size))
        assert np.isclose(col("user_repeat")[r], 1 - len(profile) / hist.item.size)
        assert np.isclose(col("rank_share")[r], (0.8 ** rank[in_baskets]).sum() / (0.8 ** rank).sum())
        assert np.isclose(col("gap_ratio")[r], np.log1p(days_since / stats.gap_days[item]))
        assert col("in_last_order")[r] == float(in_baskets[rank == 0][0])
        assert np.isclose(col("own_gap_ratio")[r], np.log1p(days_since / max(own_gap, 1.0)))
        assert np.isclose(col("log_own_gap")[r], np.log1p(own_gap))
