"""The boosted-tree ranker, its array form and the features and examples it learns from."""

from __future__ import annotations

import dataclasses
import random
import re

import numpy as np
import pytest

from loyalty.recommender import Config, Interactions, Recommender, store
from loyalty.recommender.data import DAY
from loyalty.recommender.ranker import (
    LinearRanker,
    TreeRanker,
    add_trees,
    fit_lambdarank,
    fit_trees,
    listwise_available,
)

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


def _clear_staple(data: Interactions, member: int) -> int | None:
    """The item in every one of the member's 3+ orders when each other item is in one at most."""
    mine = data.user == member
    orders = np.unique(data.basket[mine]).size
    counts = np.bincount(data.item[mine])
    top = int(counts.argmax())
    if orders >= 3 and counts[top] == orders and np.sort(counts)[-2] <= 1:
        return top
    return None


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
    cfg = Config(tree_iter=20, tree_min_positives=50, tree_blend=1.0, tree_blend_new=0.0, listwise_all=False)
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


def test_listwise_trees_in_arrays_score_like_lightgbm_and_rank_within_each_request() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(4)
    x = np.round(rng.random((12_000, 4)), 1)  # many values on a threshold
    query = np.repeat(np.arange(300), 40)
    # Within a request what counts is x0 * x1 (a line cannot say it); x2 only shifts whole requests.
    x[:, 2] = np.repeat(rng.random(300), 40)
    y = x[:, 0] * x[:, 1] + 0.1 * rng.random(x.shape[0]) > 0.5
    trees = fit_lambdarank(x, y, query, iterations=25, min_leaf=20, screen_keep=0)
    booster = lgb.train({"objective": "lambdarank", "num_leaves": 31, "max_depth": 6, "learning_rate": 0.1,
                         "min_data_in_leaf": 20, "num_threads": 1, "seed": 0, "deterministic": True,
                         "verbose": -1, "lambdarank_truncation_level": 20},
                        lgb.Dataset(x, label=y.astype(np.int32), group=np.full(300, 40)), num_boost_round=25)
    probe = np.round(rng.random((500, 4)), 1)
    assert np.allclose(trees.score(probe), booster.predict(probe))
    assert trees.score(np.array([[0.9, 0.9, 0.5, 0.5]]))[0] > trees.score(np.array([[0.9, 0.1, 0.5, 0.5]]))[0]
    # Requests without a bought item teach nothing: with none left, a clear error.
    with pytest.raises(ValueError, match="both"):
        fit_lambdarank(x[:40], np.zeros(40, dtype=bool), query[:40], iterations=5, min_leaf=5)


def test_two_rankers_added_up_score_the_sum_and_keep_the_first_ones_screen() -> None:
    rng = np.random.default_rng(5)
    x = rng.random((3000, 3))
    y = x[:, 0] + 0.3 * rng.random(3000) > 0.8
    query = np.repeat(np.arange(100), 30)
    pointwise = fit_trees(x, y, iterations=10, min_leaf=20, screen_keep=8, blend=0.5)
    listwise = fit_lambdarank(x, y, query, iterations=7, max_depth=4, min_leaf=20, screen_keep=0)
    both = add_trees(pointwise, listwise, 0.3)
    probe = rng.random((200, 3))
    assert np.allclose(both.score(probe), pointwise.score(probe) + 0.3 * listwise.score(probe))
    assert both.roots.size == 17 and both.depth == max(pointwise.depth, listwise.depth)
    assert (both.screen, both.screen_keep, both.blend) == (pointwise.screen, 8, 0.5)
    keep = np.ones(probe.shape[0], dtype=bool)
    scores, chosen = both.shortlist(probe, keep, 3)
    assert chosen.sum() == 8 and np.array_equal(chosen, pointwise.shortlist(probe, keep, 3)[1])


def test_the_listwise_half_counts_its_weight_whatever_the_scale_of_its_scores() -> None:
    rng = np.random.default_rng(6)
    x = rng.random((6000, 3))
    y = x[:, 0] * x[:, 1] + 0.2 * rng.random(6000) > 0.5
    query = np.repeat(np.arange(200), 30)
    pointwise = fit_trees(x, y, iterations=10, min_leaf=20, screen_keep=0)
    for weight in (0.5, 2.0):
        cfg = Config(tree_iter=10, tree_min_leaf=20, listwise_new_trees=6)
        both = Recommender(cfg)._add_listwise(pointwise, x, y, query, weight)
        listwise = TreeRanker(both.feature, both.threshold, both.left, both.right, both.value, both.roots[10:],
                              both.depth, 0.0)
        assert both.roots.size == 16
        assert np.isclose(listwise.score(x).std() / pointwise.score(x).std(), weight, rtol=1e-6)
    # No request with a bought row: nothing to rank, the pointwise trees alone.
    none = Recommender(Config(tree_iter=10, tree_min_leaf=20))._add_listwise(
        pointwise, x, np.zeros(x.shape[0], dtype=bool), query, 0.5)
    assert none is pointwise


def test_the_main_ranker_is_fit_listwise_and_discovery_pointwise_plus_listwise(monkeypatch) -> None:
    from loyalty.recommender import model as model_module

    calls: list[str] = []
    for name, fn in (("fit_lambdarank", fit_lambdarank), ("fit_trees", fit_trees)):
        def spy(*args, _fn=fn, _name=name, **kwargs):
            calls.append(_name)
            return _fn(*args, **kwargs)
        monkeypatch.setattr(model_module, name, spy)
    data, category = _chain()
    cfg = Config(tree_iter=20, tree_min_positives=50)
    m = Recommender(cfg).fit(data, 800, category.size, category=category)
    assert calls == ["fit_lambdarank", "fit_trees", "fit_lambdarank"]
    assert isinstance(m.ranker_all, TreeRanker) and m.ranker_all.blend == cfg.listwise_blend
    assert isinstance(m.ranker_new, TreeRanker) and m.ranker_new.blend == cfg.tree_blend_new
    # Discovery: the pointwise trees and then the (fewer) listwise ones.
    assert m.ranker_all.roots.size == 20 and m.ranker_new.roots.size == 20 + cfg.listwise_new_trees
    without = Recommender(dataclasses.replace(cfg, listwise_new=0.0)).fit(data, 800, category.size,
                                                                         category=category)
    assert without.ranker_new.roots.size == 20  # type: ignore[union-attr]
    end = float(np.max(data.time)) + DAY
    # Members with a clear staple: in each of their orders, and every other item in one at most.
    # The favourite category's best-seller comes next in ~60% of trips (the staple in 70%), so for
    # one member or another the two swap with the order of a float sum (one BLAS thread or two).
    staples = {u: s for u in np.unique(data.user).tolist() if (s := _clear_staple(data, u)) is not None}
    recs = {u: m.recommend(u, 2, now=end) for u in staples}
    assert len(staples) >= 10 and all(staples[u] in (r.item for r in recs[u]) for u in staples)
    first = [u for u in staples if recs[u][0].item == staples[u] and recs[u][0].reason == "repeat"]
    assert len(first) >= 0.8 * len(staples)  # the staple first, nearly always
    # Without LightGBM (no libgomp1 on the machine) the same data gets the pointwise trees.
    calls.clear()
    monkeypatch.setattr(model_module, "listwise_available", lambda: False)
    m = Recommender(cfg).fit(data, 800, category.size, category=category)
    assert calls == ["fit_trees", "fit_trees"] and m.ranker_all.blend == cfg.tree_blend  # type: ignore[union-attr]


def test_a_machine_without_lightgbm_is_told_and_falls_back(monkeypatch, caplog) -> None:
    import sys

    listwise_available.cache_clear()
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # import lightgbm raises ImportError
    try:
        with caplog.at_level("WARNING"):
            assert listwise_available() is False
        assert "LightGBM unavailable" in caplog.text
    finally:
        listwise_available.cache_clear()
    monkeypatch.undo()
    assert listwise_available() is True


def test_window_examples_go_back_window_by_window_and_never_see_later_lines(monkeypatch) -> None:
    data, category = _chain()
    asked: list[tuple[float | None, float, int, int]] = []
    real = Recommender._examples

    def spy(self, u, i, t, b, held, now, progress):
        out = real(self, u, i, t, b, held, now, progress)
        asked.append((now, float(t.max()), int(held.sum()), int(out[5].max()) + 1))
        return out

    monkeypatch.setattr(Recommender, "_examples", spy)
    cfg = Config(tree_iter=5, tree_min_positives=50, window_days=20.0, window_cuts=3, order_cuts=1)
    m = Recommender(cfg).fit(data, 800, category.size, category=category)
    end = float(np.max(data.time))
    (last_orders, *windows) = asked
    assert last_orders[0] is None  # each member's last order, asked at its own time
    assert [now for now, *_ in windows] == [end - 20 * DAY, end - 40 * DAY, end - 60 * DAY]
    for (now, latest, held, _), seen_until in zip(windows, (end, end - 20 * DAY, end - 40 * DAY), strict=True):
        assert latest <= seen_until and held == int(((data.time > now) & (data.time <= seen_until)).sum())
    assert all(requests > 100 for *_, requests in windows)
    assert isinstance(m.ranker_all, TreeRanker) and isinstance(m.ranker_new, TreeRanker)


def test_the_rankers_learn_from_every_request_once_numbered_apart(monkeypatch) -> None:
    data, category = _chain()
    requests: list[int] = []
    real_examples, real_learn = Recommender._examples, Recommender._learn
    learned: list[tuple[int, np.ndarray | None, np.ndarray]] = []

    def examples(self, *args):
        out = real_examples(self, *args)
        requests.append(int(out[5].max()) + 1)
        return out

    def learn(self, x, y, interactions, weight=None, blend=1.0, query=None):
        learned.append((x.shape[0], query, y))
        return real_learn(self, x, y, interactions, weight, blend, query)

    monkeypatch.setattr(Recommender, "_examples", examples)
    monkeypatch.setattr(Recommender, "_learn", learn)
    cfg = Config(tree_iter=5, tree_min_positives=50, window_days=20.0, window_cuts=3, order_cuts=1)
    Recommender(cfg).fit(data, 800, category.size, category=category)
    (rows_all, query, _), (rows_new, _, y_new) = learned
    assert len(requests) == 4  # the last orders, then three windows
    # The "all" ranker sees each request of the four as one contiguous list of its own.
    assert query is not None and np.all(np.diff(query) >= 0)
    assert np.unique(query).size == sum(requests)
    assert rows_new < rows_all and 0 < y_new.sum() < y_new.size


def test_automatic_windows_go_back_until_the_ranker_has_enough_requests(monkeypatch, caplog) -> None:
    from loyalty.recommender import model as model_module

    data, category = _chain()
    base = Config(tree_iter=5, tree_min_positives=50, window_days=20.0, window_cuts=0, order_cuts=1)
    with caplog.at_level("INFO", logger=model_module.__name__):
        Recommender(dataclasses.replace(base, ranker_users=100)).fit(data, 800, category.size, category=category)
        Recommender(dataclasses.replace(base, ranker_users=1000)).fit(data, 800, category.size, category=category)
        # Too few bought items in the last window for trees: a small shop, one window however few requests.
        Recommender(dataclasses.replace(base, ranker_users=1000, tree_min_positives=10**6)).fit(
            data, 800, category.size, category=category)
    messages = [r.getMessage() for r in caplog.records if "window" in r.getMessage()]
    few, many, small = messages
    assert small.startswith("ranker examples: 1 window(s)")
    assert few.startswith("ranker examples: 1 window(s)")  # the last window alone has 100 members
    found = re.fullmatch(r"ranker examples: (\d+) window\(s\) of 20 days, (\d+) requests, \d+ bought", many)
    assert found, many
    windows, requests = int(found[1]), int(found[2])
    assert 1 < windows <= model_module.MAX_WINDOWS and requests >= 1000



def test_order_examples_hold_out_earlier_orders_one_by_one_with_later_ones_unseen(monkeypatch) -> None:
    data, category = _chain()
    asked: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
    rows: list[tuple[int, int]] = []  # per part: its rows, its rows of items the member never bought
    learned: list[int] = []
    real, real_learn = Recommender._examples, Recommender._learn

    def spy(self, u, i, t, b, held, now, progress):
        out = real(self, u, i, t, b, held, now, progress)
        asked.append((b.copy(), held.copy(), t.copy(), int(out[5].max()) + 1))
        rows.append((out[2].size, int((~out[2]).sum())))
        assert now is None  # each member asked at the time of the order held out
        return out

    def learn(self, x, y, interactions, weight=None, blend=1.0, query=None):
        learned.append(x.shape[0])
        return real_learn(self, x, y, interactions, weight, blend, query)

    monkeypatch.setattr(Recommender, "_examples", spy)
    monkeypatch.setattr(Recommender, "_learn", learn)
    cfg = Config(tree_iter=5, tree_min_positives=50, window_days=0.0, order_cuts=3)
    Recommender(cfg).fit(data, 800, category.size, category=category)
    assert len(asked) == 3
    # The "all" ranker learns from the three parts, the "new" one from the last orders' only.
    assert learned == [sum(n for n, _ in rows), rows[0][1]]
    gone = np.zeros(0, dtype=np.int64)  # orders held out so far: none of them is seen again
    for baskets, held, _, requests in asked:
        assert not np.isin(baskets, gone).any()
        # Every member with two orders or more left gives their latest one, a member a request.
        assert requests == np.unique(data.user[np.isin(data.basket, baskets[held])]).size > 100
        gone = np.concatenate([gone, np.unique(baskets[held])])
    # The third part is each member's third-last order of the chain (those with four orders or more).
    last_three = {u: sorted(set(data.basket[data.user == u]))[-3] for u in np.unique(data.user)
                  if len(set(data.basket[data.user == u])) >= 4}
    assert set(np.unique(asked[2][0][asked[2][1]])) == set(last_three.values())

    # Automatic: back until the requests reach ranker_users, at most MAX_WINDOWS parts.
    from loyalty.recommender import model as model_module

    for users, parts in ((100, 1), (1500, 3), (10**6, model_module.MAX_WINDOWS)):
        asked.clear()
        Recommender(dataclasses.replace(cfg, order_cuts=0, ranker_users=users)).fit(
            data, 800, category.size, category=category)
        assert len(asked) == parts
