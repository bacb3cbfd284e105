"""The serving shortcuts of the recommender give exactly what the direct computation gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from loyalty.recommender.data import UserHistory
from loyalty.recommender.kernels import member_items
from loyalty.recommender.ranker import fit_trees


def test_the_stable_order_of_a_members_keys_is_numpys() -> None:
    from loyalty.recommender.kernels import _stable_order

    rng = np.random.default_rng(4)
    cases = [rng.integers(0, 20, 500), np.sort(rng.integers(0, 20, 500)), rng.integers(-5, 5, 64),
             np.array([2**62, -(2**62), 7, 7, 2**62]), np.array([3]), np.zeros(0, dtype=np.int64)]
    for keys in cases:  # many equal keys, already in order, negative, a span that would overflow
        assert np.array_equal(_stable_order(keys), np.argsort(keys, kind="stable")), keys


def test_the_groups_best_items_are_the_top_of_every_one_scored() -> None:
    from loyalty.recommender.kernels import group_top
    from loyalty.recommender.stats import ItemStats

    rng = np.random.default_rng(12)
    for trial in range(40):
        n_items = 400
        group = rng.integers(-1, 12, n_items)  # some items without a group
        st = ItemStats.__new__(ItemStats)
        st.buyers = rng.integers(0, 4, n_items).astype(float)  # a quarter never bought, many ties
        st.__post_init__()
        per_group = (3, 20, 500)[trial % 3]
        indptr, best = st.group_best(group, per_group)
        in_group = st.in_category(group)
        mine = rng.choice(n_items, trial % 9 * 4 + 1, replace=False)  # the caller never asks for none
        weights = rng.random(mine.size)
        n = (1, 10, 100, 1000)[trial % 4]
        share, top = group_top(group, mine, weights, indptr, best, in_group, n)
        want_share = np.bincount(group[mine][group[mine] >= 0], weights=weights[group[mine] >= 0],
                                 minlength=12) / max(weights.sum(), 1e-300)
        assert np.allclose(share, want_share)
        pool = best[np.isin(group[best], np.flatnonzero(want_share > 0))]
        score = want_share[group[pool]] * in_group[pool]
        want = np.sort(score[score > 0])[::-1][:n]
        got = want_share[group[top]] * in_group[top]
        assert np.unique(top).size == top.size and np.isin(top, pool).all()
        assert np.allclose(np.sort(got)[::-1], want)


def test_the_candidates_are_the_union_of_the_members_items_and_the_others() -> None:
    from loyalty.recommender.kernels import union_with_own

    rng = np.random.default_rng(8)
    for trial in range(80):
        top = (60, 64, 200, 5000)[trial % 4]  # one bitmap word, a word's edge, several, many
        own = np.unique(rng.integers(0, top, trial % 7 * 5))
        others = rng.integers(0, top, trial % 5 * 20)  # repeats, overlaps with own, any order
        items, pos, bought = union_with_own(own, others)
        assert items.tolist() == np.union1d(own, others).tolist()
        assert bought.tolist() == np.isin(items, own).tolist()
        assert np.array_equal(own[pos[bought]], items[bought]) and not pos[~bought].any()


def test_a_members_items_with_their_last_purchase_and_own_gap() -> None:
    day = 86400.0
    hist = UserHistory(item=np.array([7, 3, 7, 9, 3, 7], dtype=np.int64),
                       time=np.array([50.0, 10.0, 20.0, 30.0, 60.0, 40.0]) * day,
                       basket=np.array([5, 1, 2, 3, 6, 4], dtype=np.int64))
    gap = np.full(10, 4.0)
    items, own, member = member_items(hist.item, hist.time, hist.basket, 70 * day,
                                      np.array([30.0, 180.0, 90.0]), 0.5, gap)
    assert items.tolist() == [3, 7, 9]
    assert own[:, 0].tolist() == [2, 3, 1]  # orders
    assert (own[:, 3] / day).tolist() == [60.0, 50.0, 30.0]  # out of time order too (a late till order)
    assert own[:, 6].tolist() == [(50 + 4) / 2, (30 + 4) / 3, 4.0]  # own days between purchases, shrunk
    assert own[:, 5].tolist() == [1.0, 0.0, 0.0]  # the latest order held item 3 only
    assert np.allclose(own[:, 4], np.array([1 + 0.5**5, 0.5 + 0.5**2 + 0.5**4, 0.5**3]) / sum(0.5**r for r in range(6)))
    assert member.tolist()[:1] == [6] and np.isclose(member[3], 1 - 3 / 6)
    assert np.isclose(member[4], np.log1p(10.0))  # days since the latest order
    empty = member_items(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), 0.0,
                         np.array([30.0, 180.0, 90.0]), 0.5, gap)
    assert [a.size for a in empty[:2]] == [0, 0] and empty[2].tolist() == [0.0] * 5


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
    assert np.allclose(st.pull(rows[::-1], cols[1:]), want[::-1, 1:], rtol=1e-6)  # any order, fewer columns
    assert st.pull(rows, cols[:0]).shape == (5, 0)
    every = np.arange(80)
    full = sp.csr_matrix(st.co_user + st.ease + st.co_next)[every].toarray()
    assert np.allclose(st.pull(every, np.r_[every, 0, 0]), np.c_[full, full[:, :1], full[:, :1]], rtol=1e-6)
    # Cells are looked up by bisecting each row: a matrix whose rows are out of order is put in
    # order when the statistics are built (or loaded), and pulls the same.
    m = st.co_user
    backwards = np.concatenate([np.arange(m.indptr[r + 1] - 1, m.indptr[r] - 1, -1) for r in range(80)])
    jumbled = sp.csr_matrix((m.data[backwards], m.indices[backwards], m.indptr.copy()), shape=m.shape)
    jumbled.has_sorted_indices = False
    assert np.allclose(dataclasses.replace(st, co_user=jumbled).pull(rows, cols), want, rtol=1e-6)
    for bad_rows, bad_cols in ((np.array([80]), cols), (rows, np.array([-1]))):
        with pytest.raises(IndexError):  # never read outside the matrices
            st.pull(bad_rows, bad_cols)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_the_score_sheet_adds_rows_as_scipy_does_and_is_clean_after_clear(index_dtype: type) -> None:
    import scipy.sparse as sp

    from loyalty.recommender.scores import ScoreSheet

    rng = np.random.default_rng(11)
    m = sp.random(300, 500, density=0.05, format="csr", random_state=4, dtype=np.float32)
    m.data[m.indptr[7]:m.indptr[8]] = 0.0  # an empty row
    m.eliminate_zeros()
    m.indptr, m.indices = m.indptr.astype(index_dtype), m.indices.astype(index_dtype)
    e = sp.random(300, 500, density=0.01, format="csr", random_state=5)
    e.data -= 0.5  # signed, sparser
    sheet = ScoreSheet(500, 3)
    for trial in range(3):  # the same sheet, request after request
        rows = rng.choice(300, 40) if trial else np.array([299, 3, 3, 0, 150, 7])  # repeated, first, last
        w1, w2, w3 = rng.random(rows.size), np.ones(rows.size), rng.random(rows.size)
        sheet.add(m, rows, 0, w1, second=(1, w2))
        sheet.add(e, rows, 2, w3)
        sheet.add(e, rows[:5], 2, w3[:5])  # a score added to twice
        want = m[rows].T.astype(np.float64)
        assert np.allclose(sheet.values[0], want @ w1, rtol=1e-12, atol=0)
        assert np.allclose(sheet.values[1], np.asarray(want.sum(axis=1)).ravel(), rtol=1e-12, atol=0)
        assert np.allclose(sheet.values[2], e[rows].T @ w3 + e[rows[:5]].T @ w3[:5], rtol=1e-12, atol=1e-15)
        for score, n in ((0, 7), (1, 500), (2, 20), (2, 0)):
            v = sheet.values[score]
            got = sheet.top(score, n)
            assert np.unique(got).size == got.size
            assert np.array_equal(np.sort(v[got])[::-1], np.sort(v[v > 0])[::-1][:n])  # the n best, positive only
        sheet.clear()
        assert not sheet.values.any()
        assert all(sheet.top(s, 10).size == 0 for s in range(3))
    sheet.add(m, np.array([1]), 0, np.array([2.0]))
    v = sheet.values[0].copy()
    with pytest.raises(ValueError, match="still empty"):  # a second weighting shares the first's cells
        sheet.add(m, np.array([2]), 0, np.ones(1), second=(1, np.ones(1)))
    with pytest.raises(ValueError, match="one weight per row"):
        sheet.add(m, np.array([2, 3]), 2, np.ones(1))
    for bad in ([300], [-1]):  # never read outside the matrix
        with pytest.raises(IndexError):
            sheet.add(m, np.array(bad), 2, np.ones(1))
    assert np.array_equal(sheet.values[0], v) and not sheet.values[1:].any()  # refused: nothing added
    sheet.clear()
    assert not sheet.values.any()


def test_the_top_k_is_the_head_of_a_full_sort_of_the_kept_scores() -> None:
    from loyalty.recommender.kernels import top_k

    rng = np.random.default_rng(4)
    for trial in range(200):
        n = int(rng.integers(0, 60))
        scores = rng.integers(-3, 4, n).astype(np.float64)  # many ties
        if trial % 4 == 0:
            scores = rng.standard_normal(n)
        keep = rng.random(n) < (0.3, 0.8, 1.0)[trial % 3]
        k = int(rng.integers(0, 12))
        kept = np.flatnonzero(keep)
        want = kept[np.lexsort((kept, -scores[kept]))][:k]  # best first, of equal ones the lower index
        assert top_k(scores, keep, k).tolist() == want.tolist()
    assert top_k(np.ones(3), np.ones(3, bool), -1).size == 0


def test_the_best_of_the_touched_cells_breaks_ties_by_first_touched() -> None:
    from loyalty.recommender.kernels import top_touched

    values = np.array([0.0, 3.0, 1.0, 3.0, -2.0, 1.0, 1.0, 0.0])
    touched = np.array([5, 1, 4, 2, 3, 6, 0], dtype=np.int32)  # 7 never touched
    assert top_touched(values, touched, 1).tolist() in ([1], [3])
    assert sorted(top_touched(values, touched, 2).tolist()) == [1, 3]
    assert sorted(top_touched(values, touched, 3).tolist()) == [1, 3, 5]  # of the three 1.0s, 5 came first
    assert sorted(top_touched(values, touched, 4).tolist()) == [1, 2, 3, 5]
    assert sorted(top_touched(values, touched, 9).tolist()) == [1, 2, 3, 5, 6]  # positive only
    assert top_touched(values, touched, 0).size == 0 and top_touched(values, touched[:0], 3).size == 0


def test_the_factor_top_finds_the_items_the_whole_product_finds() -> None:
    from loyalty.recommender.kernels import longest_first_top
    from loyalty.recommender.stats import ItemStats

    rng = np.random.default_rng(9)
    n_items = 20_000
    # A catalogue like a real one: a few items with long factors, a long tail near zero.
    factors = (rng.standard_normal((n_items, 16)) * (rng.pareto(1.5, n_items) ** 2)[:, None])
    factors = factors.astype(np.float32)
    factors[rng.random(n_items) < 0.1] = 0.0  # never sold
    st = ItemStats.__new__(ItemStats)
    st.factors = factors
    st.__post_init__()
    read: list[int] = []  # how many rows each answer read
    for trial in range(30):
        q = (rng.standard_normal(16) * (0.01 if trial % 10 == 0 else 1.0)).astype(np.float32)
        n = (100, 5, 3000)[trial % 3]
        got = st.factor_top(q, n)
        scores = factors @ q
        want = np.sort(scores[scores > 0])[::-1][:n]  # the n best positive scores
        assert np.unique(got).size == got.size and np.array_equal(np.sort(scores[got])[::-1], want)
        _, length, rows = st._by_length  # type: ignore[misc]
        read.append(longest_first_top(rows, length, q, n)[1])
    assert min(read) < n_items / 10  # the long tail was never read
    order, length, rows = st._by_length  # type: ignore[misc]
    assert st.factor_top(np.zeros(16, np.float32), 10).size == 0  # no taste: nothing scores above 0
    assert longest_first_top(rows, length, np.zeros(16, np.float32), 10)[1] == n_items  # all read
    assert st.factor_top(q, 0).size == 0
    assert np.all(np.diff(length) <= 0) and np.array_equal(rows, factors[order])


def test_prepare_builds_what_the_first_request_would_have_built() -> None:
    from loyalty.recommender import Config, Recommender
    from loyalty.recommender.data import DAY
    from tests.loyalty.test_recommender_trees import _chain

    data, category = _chain(members=300)
    m = Recommender(Config(tree_iter=10, tree_min_positives=50)).fit(data, 300, category.size, category=category)
    st = m.stats
    assert st is not None and st.clusters.size and st._by_length is None and not st._group_best
    last = st._window_end(st.end_time + 1.0)
    assert (last, 30) not in st._recent and (last, 7) not in st._recent
    m.prepare()
    built = (st._by_length, dict(st._group_best), dict(st._trend_index), dict(st._recent))
    assert built[0] is not None and len(built[1]) == 2  # the categories' and the learned groups' best items
    assert (30, m.config.features.trend_candidates) in built[2]
    assert (last, 30) in built[3] and (last, 7) in built[3]  # the last window's sales, which every request reads
    m.recommend(3, 5, now=float(np.max(data.time)) + DAY)
    # The request found them ready.
    assert st._by_length is built[0] and st._group_best == built[1]
    assert st._trend_index == built[2] and st._recent == built[3]
    with pytest.raises(RuntimeError, match="not trained"):
        Recommender().prepare()


# A serving process loads a model it did not fit: nothing in it has run the compiled loops yet.
_SERVING_PROCESS = """
import json, sys
from loyalty.recommender import kernels, store
def compiled():
    return {n: len(f.signatures) for n, f in vars(kernels).items() if hasattr(f, "signatures") and n[0] != "_"}
m = store.load(store.newest(sys.argv[1]))
before = compiled()
m.prepare()
ready = compiled()
m.recommend(3, 5, now=m.stats.end_time + 1.0)
m.recommend(4, 5, now=m.stats.end_time + 1.0, exclude_bought=True)
print(json.dumps([before, ready, compiled()]))
"""


def test_a_loaded_model_is_compiled_by_prepare_not_by_the_first_request(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    from loyalty.recommender import Config, Recommender, store
    from tests.loyalty.test_recommender_trees import _chain

    data, category = _chain(members=300)
    m = Recommender(Config(tree_iter=10, tree_min_positives=50)).fit(data, 300, category.size, category=category)
    store.save(m, tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _SERVING_PROCESS, str(tmp_path)], cwd=root, check=True,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": root}).stdout
    before, ready, after = json.loads(out.strip().splitlines()[-1])
    assert not any(before.values())  # a fresh process: nothing compiled or loaded
    assert ready and all(ready.values())  # prepare had every loop compiled (or read from the cache)
    assert after == ready  # two requests, one per mode, compiled nothing more


@pytest.mark.parametrize(("days", "n"), [(30, 5), (7, 3), (1, 2), (30, 500)])
def test_trending_from_the_day_index_is_the_top_of_every_items_count(days: int, n: int) -> None:
    """The per-day index names few items, yet at any moment its top n is exactly the top n of
    the whole catalogue's counts in the window (ties: the lower item first)."""
    from loyalty.recommender.data import DAY
    from loyalty.recommender.stats import item_stats

    rng = np.random.default_rng(days * 1000 + n)
    lines = 6000
    # Popularity that moves: each item sells in a season of its own, a few sell all year.
    i = rng.integers(0, 120, lines)
    season = rng.uniform(0, 200, 120) * DAY
    t = np.where(i < 10, rng.uniform(0, 200 * DAY, lines), season[i] + rng.normal(0, 12 * DAY, lines))
    t = np.sort(np.clip(t, 0, 200 * DAY - 1).round())
    u = rng.integers(0, 300, lines)
    st = item_stats(u, i, t, np.arange(lines), 300, 120, shrink=5.0, neighbours=10, rank_decay=0.8)
    moments = np.concatenate([
        rng.uniform(-5 * DAY, 215 * DAY, 150),  # before the first sale and after training ended
        np.arange(0, 205) * DAY,  # midnights
        np.arange(0, 205) * DAY - 1.0,  # the last second of a day
    ])
    for now in moments:
        counts = st.recent_counts(now, float(days))
        nz = np.flatnonzero(counts > 0)
        want = nz[np.lexsort((nz, -counts[nz]))][:n]
        assert st.trending(now, float(days), n).tolist() == want.tolist(), now
        items = rng.choice(120, 17)
        assert np.array_equal(st.recent_counts(now, float(days), items), counts[items])
    indptr, _, _ = st.trend_index(days, n)
    pool_sizes = np.diff(indptr)
    assert pool_sizes.max() < 120 or n >= 120  # it does name fewer items than the catalogue
    assert st.trending(50 * DAY + 0.5, 2.5, 3).size == 3  # a window of part days: every item counted
