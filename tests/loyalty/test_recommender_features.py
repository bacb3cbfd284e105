"""Candidate features the rankers read: the undecayed item-kNN score and the per-request relative scores."""

from __future__ import annotations

import numpy as np

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
