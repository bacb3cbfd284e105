"""The serving shortcuts of the recommender give exactly what the direct computation gives."""

from __future__ import annotations

import numpy as np
import pytest

from loyalty.recommender.data import UserHistory
from loyalty.recommender.features import _by_item, _top
from loyalty.recommender.ranker import fit_trees


@pytest.mark.parametrize("positive", [0.5, 0.02, 0.001])
def test_the_top_of_a_large_score_is_the_same_with_the_sampled_bar(positive: float) -> None:
    rng = np.random.default_rng(7)
    for trial in range(20):
        values = rng.standard_normal(50_000).astype(np.float32)
        values[rng.random(values.size) > positive] = 0.0  # dense, sparse or nearly empty scores
        if trial % 5 == 0:
            values[:300] = 9.0  # ties at the top
        got = _top(values, 100)
        positive_values = np.sort(values[values > 0])[::-1]
        want = positive_values[:100]
        assert got.size == want.size
        assert np.array_equal(np.sort(values[got])[::-1], want)


def test_a_members_items_with_their_first_and_last_purchase() -> None:
    hist = UserHistory(item=np.array([7, 3, 7, 9, 3, 7], dtype=np.int64),
                       time=np.array([50.0, 10.0, 20.0, 30.0, 60.0, 40.0]),
                       basket=np.arange(6, dtype=np.int64))
    items, inv, first, last = _by_item(hist)
    assert items.tolist() == [3, 7, 9]
    assert items[inv].tolist() == hist.item.tolist()
    assert first.tolist() == [10.0, 20.0, 30.0]  # out of time order too (a late-synced till order)
    assert last.tolist() == [60.0, 50.0, 30.0]
    empty = _by_item(UserHistory(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)))
    assert [a.size for a in empty] == [0, 0, 0, 0]


def test_the_flat_tree_walk_scores_like_sklearn_on_ties_and_missing_rows() -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.random((4000, 5)), 1)  # many values equal to a threshold
    y = (x[:, 0] > 0.5) ^ (x[:, 1] > 0.5) | (rng.random(4000) < 0.05)
    trees = fit_trees(x, y, iterations=20, leaves=15, max_depth=5, min_leaf=20, screen_keep=0)
    from sklearn.ensemble import HistGradientBoostingClassifier

    reference = HistGradientBoostingClassifier(max_iter=20, max_leaf_nodes=15, max_depth=5, learning_rate=0.1,
                                               min_samples_leaf=20, early_stopping=False,
                                               random_state=0).fit(x, y)
    probe = np.round(rng.random((300, 5)), 1)
    assert np.allclose(trees.score(probe), reference.decision_function(probe))
    assert np.allclose(trees.score(probe[::-1]), reference.decision_function(probe[::-1]))  # a strided view
    assert trees.score(np.zeros((0, 5))).shape == (0,)


def test_the_pull_behind_a_reason_is_the_sum_of_the_three_item_signals() -> None:
    import scipy.sparse as sp

    from loyalty.recommender.stats import item_stats

    rng = np.random.default_rng(5)
    u = np.sort(rng.integers(0, 200, 4000))
    i = rng.integers(0, 80, 4000)
    t = np.arange(4000, dtype=np.float64) * 3600.0
    b = np.arange(4000) // 3
    st = item_stats(u, i, t, b, 200, 80, shrink=5.0, neighbours=20, rank_decay=0.8)
    rows, cols = np.array([3, 7, 11, 40, 41]), np.array([5, 0, 79, 12])
    want = sp.csr_matrix(st.co_user + st.ease + st.co_next)[rows][:, cols].toarray()
    assert want.any()
    assert np.allclose(st.pull(rows, cols), want, rtol=1e-6)
