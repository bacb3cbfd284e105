"""The boosted-tree ranker, its array form and the features and examples it learns from."""

from __future__ import annotations

import random

import numpy as np
import pytest

from loyalty.recommender import Config, Interactions, Recommender, store
from loyalty.recommender.data import DAY
from loyalty.recommender.ranker import LinearRanker, TreeRanker, fit_trees

T0 = 1_700_000_000.0


def test_trees_in_arrays_score_like_sklearn_and_learn_what_a_line_cannot() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(6000, 3))
    y = x[:, 0] * x[:, 1] > 0  # "both high or both low"
    trees = fit_trees(x, y, iterations=30, min_leaf=20, screen_keep=0)
    reference = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=31, max_depth=6, learning_rate=0.1, min_samples_leaf=20,
        early_stopping=False, random_state=0).fit(x, y)
    assert np.allclose(trees.score(x), reference.decision_function(x))
    s = trees.score(np.array([[0.8, 0.8, 0.0], [-0.8, -0.8, 0.0], [0.8, -0.8, 0.0], [-0.8, 0.8, 0.0]]))
    assert min(s[:2]) > max(s[2:])
    with pytest.raises(ValueError, match="both"):
        fit_trees(x, np.zeros(len(x), dtype=bool))


def test_the_trees_rank_only_the_screens_shortlist() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(3000, 2))
    y = x[:, 0] > 0.2
    trees = fit_trees(x, y, iterations=10, min_leaf=20, screen_keep=5)
    assert isinstance(trees.screen, LinearRanker)
    keep = np.ones(100, dtype=bool)
    keep[np.argmax(x[:100, 0])] = False  # e.g. out of stock: never shortlisted
    scores, chosen = trees.shortlist(x[:100], keep, k=4)
    assert chosen.sum() == 8 and not (chosen & ~keep).any()  # max(5, 2k) kept rows
    assert np.isfinite(scores[chosen]).all() and np.isneginf(scores[~chosen]).all()
    best_kept = np.argsort(-np.where(keep, x[:100, 0], -9))[:4]
    assert chosen[best_kept].all()


def _chain(members: int = 700, seed: int = 3) -> tuple[Interactions, np.ndarray]:
    """Members with a staple each and a favourite category they explore by popularity."""
    rng = random.Random(seed)
    n_cat, per_cat = 6, 10
    category = np.repeat(np.arange(n_cat), per_cat)
    rows = []
    basket = 0
    for u in range(members):
        fav = rng.randrange(n_cat)
        staple = fav * per_cat + rng.randrange(per_cat)
        for trip in range(rng.randint(3, 8)):
            basket += 1
            day = trip * 12 + rng.uniform(0, 6)
            picks = {staple} if rng.random() < 0.7 else set()
            for _ in range(rng.randint(1, 3)):  # popular items of the favourite category first
                picks.add(fav * per_cat + min(int(rng.expovariate(0.5)), per_cat - 1))
            rows += [(u, item, T0 + day * DAY, basket) for item in picks]
    a = np.array(rows, dtype=np.float64)
    data = Interactions(user=a[:, 0].astype(np.int64), item=a[:, 1].astype(np.int64), time=a[:, 2],
                        basket=a[:, 3].astype(np.int64))
    return data, category


def test_a_chain_gets_tree_rankers_that_survive_save_and_load(tmp_path) -> None:
    data, category = _chain()
    m = Recommender(Config(tree_iter=20, tree_min_positives=50)).fit(data, 800, category.size, category=category)
    assert isinstance(m.ranker_all, TreeRanker) and isinstance(m.ranker_new, TreeRanker)
    end = float(np.max(data.time)) + DAY
    loaded = store.load(str(store.save(m, str(tmp_path))))
    assert isinstance(loaded.ranker_all, TreeRanker)
    for user in (0, 5, 17):
        for kw in ({}, {"exclude_bought": True}):
            assert loaded.recommend(user, 5, now=end, **kw) == m.recommend(user, 5, now=end, **kw)


def test_the_discovery_ranker_has_its_own_blend_with_the_screen(tmp_path) -> None:
    data, category = _chain()
    cfg = Config(tree_iter=20, tree_min_positives=50, tree_blend=1.0, tree_blend_new=0.0)
    m = Recommender(cfg).fit(data, 800, category.size, category=category)
    assert isinstance(m.ranker_all, TreeRanker) and isinstance(m.ranker_new, TreeRanker)
    assert (m.ranker_all.blend, m.ranker_new.blend) == (1.0, 0.0)
    loaded = store.load(str(store.save(m, str(tmp_path))))
    assert (loaded.ranker_all.blend, loaded.ranker_new.blend) == (1.0, 0.0)  # type: ignore[union-attr]
    # Without the screen's logit the discovery list follows the trees alone.
    end = float(np.max(data.time)) + DAY
    c = m._candidates(m.history.get(3), 3, end)  # type: ignore[union-attr]
    scores, chosen = m.ranker_new.shortlist(c.x, ~c.bought, 3)
    assert np.allclose(scores[chosen], m.ranker_new.score(c.x[chosen]))


def test_discovery_stays_in_the_favourite_category_and_a_small_shop_gets_a_line() -> None:
    data, category = _chain()
    m = Recommender(Config(tree_iter=20, tree_min_positives=50)).fit(data, 800, category.size, category=category)
    end = float(np.max(data.time)) + DAY
    for user in range(10):
        own = np.unique(data.item[data.user == user])
        fav = np.bincount(category[own]).argmax()
        recs = m.recommend(user, 3, now=end, exclude_bought=True)
        assert recs and all(r.item not in own for r in recs)
        assert category[recs[0].item] == fav
    small, cat = _chain(members=40)
    few = Recommender().fit(small, 50, cat.size, category=cat)
    assert isinstance(few.ranker_all, LinearRanker)  # too few bought examples for trees


def test_row_weights_change_what_both_rankers_learn() -> None:
    # x=0: 30% bought, x=1: 50% bought; weighing x=0's bought rows x5 makes x=0 the better bet.
    x = np.repeat([[0.0], [1.0]], 1000, axis=0)
    y = np.concatenate([np.arange(1000) < 300, np.arange(1000) < 500])
    w = np.where((x[:, 0] == 0) & y, 5.0, 1.0)
    probe = np.array([[0.0], [1.0]])
    from loyalty.recommender.ranker import fit_ranker

    for fit in (lambda **kw: fit_ranker(x, y, **kw),
                lambda **kw: fit_trees(x, y, iterations=5, min_leaf=20, screen_keep=0, **kw)):
        plain, weighted = fit().score(probe), fit(weight=w).score(probe)
        assert plain[1] > plain[0] and weighted[0] > weighted[1]
