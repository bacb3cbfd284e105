"""The bounded-memory pieces of the recommender give the same answers as the direct computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from loyalty.recommender.kernels import _similar_members
from loyalty.recommender.scores import ScoreSheet
from loyalty.recommender.stats import _ease, _spd_inverse, buyer_index, item_stats, keep_top, top_products


def _random_incidence(rng: np.random.Generator, rows: int, cols: int, density: float) -> sp.csr_matrix:
    m = sp.random(rows, cols, density=density, random_state=np.random.RandomState(int(rng.integers(1 << 30))),
                  format="csr")
    m.data[:] = 1.0
    return m


def test_block_wise_products_keep_the_same_neighbours_as_the_full_product() -> None:
    rng = np.random.default_rng(1)
    x = _random_incidence(rng, 300, 80, 0.08)
    full = (x.T @ x).toarray()
    np.fill_diagonal(full, 0.0)

    rows, cols = rng.uniform(0.5, 2.0, 80), rng.uniform(0.5, 2.0, 80)  # scores without ties
    got = top_products(x, x, 5, row_scale=rows, col_scale=cols, shrink=3.0,
                       max_pairs=200).toarray()  # forces many blocks
    expected = np.where(full > 0, full * rows[:, None] * cols[None, :] * full / (full + 3.0), 0.0)
    for r in range(80):
        want = set(np.argsort(-expected[r])[:5][expected[r][np.argsort(-expected[r])[:5]] > 0])
        assert set(np.flatnonzero(got[r])) == want
        assert np.allclose(got[r][list(want)], expected[r][list(want)], rtol=1e-5)
    assert got.dtype == np.float32


def test_keep_top_keeps_the_largest_entries_of_each_row() -> None:
    m = sp.csr_matrix(np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    assert keep_top(m, 2).toarray().tolist() == [[0, 3, 0, 2], [5, 0, 0, 0], [0, 0, 0, 0]]


def test_keep_top_breaks_ties_by_the_lower_column_and_keeps_positive_entries_only() -> None:
    # A row's columns out of order, as a sparse product leaves them.
    m = sp.csr_matrix((np.array([2.0, 2.0, 0.0, 2.0, -1.0, 4.0]), np.array([5, 1, 0, 3, 2, 4]),
                       np.array([0, 5, 6])), shape=(2, 6))
    top = keep_top(m, 3)
    assert top.toarray().tolist() == [[0, 2, 0, 2, 0, 2], [0, 0, 0, 0, 4, 0]]
    assert top.indices.tolist() == [1, 3, 5, 4]  # each row's columns in order
    assert keep_top(m, 2).toarray().tolist() == [[0, 2, 0, 2, 0, 0], [0, 0, 0, 0, 4, 0]]
    assert keep_top(m, 10).nnz == 4  # the zero and the negative entry are not kept
    assert keep_top(m, 0).nnz == 0


def test_keep_top_is_the_top_of_each_sorted_row() -> None:
    m = sp.random(200, 900, density=0.2, format="csr", random_state=4)
    m.data = np.round(m.data * 8)  # few distinct values, zeros among them: many ties
    top = keep_top(m, 25)
    dense = m.toarray()
    for r in range(200):
        # Value descending, then column ascending; positive values only.
        order = np.lexsort((np.arange(900), -dense[r]))
        want = sorted(c for c in order[:25] if dense[r, c] > 0)
        assert top[r].indices.tolist() == want
        assert np.array_equal(top[r].data, dense[r, want].astype(np.float32))


def test_products_leave_the_diagonal_out_unless_asked() -> None:
    x = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], dtype=np.float32))
    without = top_products(x, x, 3).toarray()
    assert without.tolist() == [[0, 2, 2], [2, 0, 1], [2, 1, 0]]
    assert np.array_equal(top_products(x, x, 3, diagonal=True).toarray(), (x.T @ x).toarray())
    # Each row's best one; the ties in rows 1 and 2 go to the lower column.
    assert top_products(x, x, 1, diagonal=True).toarray().tolist() == [[3, 0, 0], [2, 0, 0], [2, 0, 0]]


def test_similar_members_are_the_top_of_the_whole_product() -> None:
    """The hash table's sums against a dense product over a million members: many buyers per
    item, members spread over the whole id range, ties at the k-th place."""
    rng = np.random.default_rng(3)
    n_members = 1_000_000
    m = sp.random(50, n_members, density=0.0004, format="csr", random_state=6, dtype=np.float32)
    m.data = np.round(m.data * 4) / 4 + 0.25  # few distinct values: many ties
    for trial in range(6):
        items = rng.choice(50, 16, replace=False)
        weights = rng.integers(1, 4, 16).astype(np.float64)
        sums = np.asarray(m[items].T @ weights).ravel()
        user = int(np.argmax(sums)) if trial % 2 else -1  # the asking member is never their own neighbour
        if user >= 0:
            sums[user] = 0.0
        for k in (0, 1, 300, 10**6):
            rows, got = _similar_members(m.indptr, m.indices, m.data, items.astype(np.int64), weights, user, k)
            positive = np.sort(sums[sums > 0])[::-1]
            assert np.unique(rows).size == rows.size and user not in rows
            assert np.array_equal(np.sort(got)[::-1], positive[:k])
            assert np.array_equal(got, sums[rows])


def _random_chain(seed: int, n_users: int, n_items: int, lines: int, **kwargs):
    """Item statistics of random one-line baskets (members and items uniform), lines in member
    and time order."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, lines)
    i = rng.integers(0, n_items, lines)
    t = rng.integers(0, 10**7, lines).astype(np.float64)
    order = np.lexsort((t, u))
    return item_stats(u[order], i[order], t[order], np.arange(lines), n_users, n_items, shrink=5.0,
                      neighbours=20, rank_decay=0.8, **kwargs)


def test_similar_customers_are_found_through_the_buyer_index() -> None:
    n_users, n_items = 400, 60
    # The cap is not binding: must equal a scan of every member.
    st = _random_chain(2, n_users, n_items, 5000, buyers_per_item=n_users)
    probe_items = np.array([3, 7, 11])
    values = np.array([0.5, 0.3, 0.2])
    rows, weights = st.neighbours(probe_items, values, user=5, k=10)
    sheet = ScoreSheet(n_items, 1)
    sheet.add(st.user_unit, rows, 0, weights)
    got = sheet.values[0]
    dense = st.user_unit.toarray().astype(np.float64)
    probe = np.zeros(n_items)
    probe[probe_items] = values / np.sqrt((values**2).sum())
    sims = dense @ probe
    sims[5] = 0.0
    top = np.argsort(-sims)[:10]
    top = top[sims[top] > 0]
    vectors = dense * st.user_norms[:, None]
    expected = (vectors[top].T @ sims[top]) / sims[top].sum()
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-7)
    # The capped index keeps each item's strongest buyers only.
    capped = buyer_index(st.user_unit, 3)
    assert np.diff(capped.indptr).max() <= 3


def test_similar_members_spread_their_strongest_items_and_are_found_through_whole_rows() -> None:
    whole = _random_chain(4, 120, 90, 9000)
    lengths = np.diff(whole.user_unit.indptr)
    assert lengths.max() > 40  # the cut below binds
    cut = _random_chain(4, 120, 90, 9000, member_row_items=40)
    assert np.diff(cut.user_unit.indptr).tolist() == np.minimum(lengths, 40).tolist()
    for member in range(120):
        row, kept = whole.user_unit.getrow(member), cut.user_unit.getrow(member)
        if row.nnz <= 40:
            assert (row != kept).nnz == 0
        else:  # the 40 largest entries, unchanged; nothing kept is smaller than anything dropped
            assert np.isin(kept.indices, row.indices).all()
            assert np.allclose(kept.toarray()[0, kept.indices], row.toarray()[0, kept.indices])
            dropped = np.setdiff1d(row.indices, kept.indices)
            assert kept.data.min() >= row.toarray()[0, dropped].max()
    assert cut.user_unit.has_sorted_indices
    # The search space is built from the whole rows: the same buyers, the same neighbours.
    assert (whole.item_buyers != cut.item_buyers).nnz == 0
    items, values = np.array([3, 8, 21]), np.array([0.6, 0.3, 0.1])
    assert np.array_equal(whole.neighbours(items, values, 7, 25)[0], cut.neighbours(items, values, 7, 25)[0])
    # A cut no row reaches leaves the matrix itself.
    assert _random_chain(4, 120, 90, 9000, member_row_items=10_000).user_unit.nnz == whole.user_unit.nnz


def test_a_long_history_looks_for_neighbours_through_its_strongest_items_only() -> None:
    rng = np.random.default_rng(12)
    st = _random_chain(12, 300, 50, 6000)
    items = np.arange(0, 40, 2)
    values = rng.integers(1, 5, items.size) / 4.0  # ties at the probe's last place
    values[3] = 0.0
    for probe in (1, 4, 7, 20, 30):
        rows, weights = st.neighbours(items, values, user=9, k=15, probe=probe)
        # The same as asking with the chosen items alone (the weights do not depend on the values'
        # scale): the highest values, of equal ones at the last place the first, in their order.
        bar = np.sort(values)[::-1][min(probe, items.size) - 1]
        chosen = np.concatenate([np.flatnonzero(values > bar), np.flatnonzero(values == bar)])[:probe]
        want_rows, want_weights = st.neighbours(items[chosen], values[chosen], user=9, k=15, probe=probe)
        assert set(rows.tolist()) == set(want_rows.tolist()) and 9 not in rows
        assert np.allclose(np.sort(weights), np.sort(want_weights))
    assert st.neighbours(items, np.zeros(items.size), user=9, k=15)[0].size == 0  # no strength, no one


def test_ease_on_a_large_catalogue_is_learned_among_the_best_sellers_only() -> None:
    rng = np.random.default_rng(3)
    x = _random_incidence(rng, 500, 40, 0.1)
    x = sp.hstack([sp.csr_matrix(np.ones((500, 5))), x[:, 5:]], format="csr")  # items 0-4 sell most
    buyers = np.asarray(x.sum(axis=0)).ravel()
    best = set(np.argsort(-buyers, kind="stable")[:10].tolist())
    full = _ease(x, 10.0, 100, 1000)
    small = _ease(x, 10.0, 100, 10)
    coo = small.tocoo()
    assert set(coo.row.tolist()) | set(coo.col.tolist()) <= best
    assert set(range(5)) <= best
    assert full.nnz > small.nnz > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cholesky_inverse_is_the_inverse_mirrored_across_blocks(dtype: type) -> None:
    rng = np.random.default_rng(5)
    x = (rng.random((300, 1100)) < 0.05).astype(dtype)  # 1,100 rows: two full blocks and a part
    gram = x.T @ x + 10.0 * np.eye(1100, dtype=dtype)
    want = np.linalg.inv(gram.astype(np.float64))
    work = gram.copy()
    got = _spd_inverse(work)
    assert got.dtype == dtype and np.shares_memory(got, work)  # no second matrix-sized array
    assert np.allclose(_spd_inverse(np.asfortranarray(gram)), got)  # column order: a copy, the same inverse
    assert np.allclose(got, got.T) and np.allclose(got, want, rtol=1e-3, atol=1e-6)
    with pytest.raises(np.linalg.LinAlgError):
        _spd_inverse(np.array([[1.0, 2.0], [2.0, 1.0]], dtype=dtype))  # symmetric, not positive definite
    with pytest.raises(ValueError, match="positive ridge"):
        _ease(sp.csr_matrix(x), 0.0, 10, 100)


def test_latent_factors_find_the_taste_groups_without_categories() -> None:
    from loyalty.recommender.stats import latent_factors

    rng = np.random.default_rng(4)
    # Two groups of members, each buying only from its own half of the catalogue.
    a = _random_incidence(rng, 200, 30, 0.3)
    b = _random_incidence(rng, 200, 30, 0.3)
    x = sp.bmat([[a, None], [None, b]], format="csr")
    v, strength = latent_factors(x, 4)
    assert v.shape == (60, 4) and v.dtype == np.float32
    assert strength.shape == (4,) and (np.diff(strength) <= 0).all()  # the strongest factor first
    profile = np.zeros(60, dtype=np.float32)
    profile[[0, 1, 2]] = 1.0 / 3  # a member of the first group who bought three items
    scores = v @ (profile @ v)
    assert scores[3:30].min() > scores[30:].max()  # the first half's unseen items come first
    assert latent_factors(x, 0)[0].shape == (60, 0)


def test_learned_item_groups_stand_in_for_missing_categories() -> None:
    from loyalty.recommender.stats import item_clusters, latent_factors

    rng = np.random.default_rng(5)
    blocks = [_random_incidence(rng, 150, 20, 0.3) for _ in range(3)]
    x = sp.block_diag(blocks, format="csr")
    x = sp.hstack([x, sp.csr_matrix((450, 2))], format="csr")  # two items nobody bought
    buyers = np.asarray(x.sum(axis=0)).ravel()
    v, strength = latent_factors(x, 6)
    groups = item_clusters(v, buyers, 3, strength)
    assert groups.shape == (62,) and (groups[60:] == -1).all()
    for b in range(3):  # each taste group's items share one label, and no other group has it
        labels = set(groups[b * 20:(b + 1) * 20].tolist())
        assert len(labels) == 1
        assert not labels & set(np.delete(groups[:60], np.arange(b * 20, (b + 1) * 20)).tolist())
    assert (item_clusters(np.zeros((62, 0), np.float32), buyers, 3) == -1).all()


def test_item_groups_weigh_each_factor_by_its_strength() -> None:
    from loyalty.recommender.stats import item_clusters

    rng = np.random.default_rng(8)
    # Two taste groups of 20 items carried by two strong factors, and eight weak factors of noise
    # (as an SVD's last components are): each column of unit length, as the SVD returns them.
    v = np.zeros((40, 10), dtype=np.float32)
    v[:20, 0] = v[20:, 1] = 1.0 / np.sqrt(20)
    noise = rng.normal(size=(40, 8))
    v[:, 2:] = noise / np.linalg.norm(noise, axis=0)
    strength = np.array([100.0, 90.0] + [1.0] * 8)
    buyers = np.full(40, 10.0)
    weighed = item_clusters(v, buyers, 2, strength)
    assert len(set(weighed[:20])) == 1 and len(set(weighed[20:])) == 1 and weighed[0] != weighed[20]
    unweighed = item_clusters(v, buyers, 2)  # the noise counts as much as the taste groups
    assert len(set(unweighed[:20])) == 2 or len(set(unweighed[20:])) == 2


def test_item_groups_are_found_alike_for_busy_and_quiet_tastes() -> None:
    from loyalty.recommender.stats import group_factors, item_clusters

    for seed in range(3):
        rng = np.random.default_rng(seed)
        # One taste group whose members buy most of its items, two whose members buy few.
        blocks = [_random_incidence(rng, 150, 20, p) for p in (0.6, 0.15, 0.15)]
        x = sp.block_diag(blocks, format="csr")
        buyers = np.asarray(x.sum(axis=0)).ravel()
        v, strength = group_factors(x, buyers, 6)
        assert v.shape == (60, 7) and strength.shape == (7,)
        # The direction every item shares (the square root of its buyers) is gone from them all.
        shared = np.sqrt(buyers) / np.linalg.norm(np.sqrt(buyers))
        assert np.abs(shared @ v).max() < 1e-4
        groups = item_clusters(v, buyers, 3, strength)
        assert [len(set(groups[b * 20:(b + 1) * 20].tolist())) for b in range(3)] == [1, 1, 1]
        assert len(set(groups.tolist())) == 3
    assert group_factors(x, buyers, 0)[0].shape == (60, 0)


def test_item_groups_do_not_depend_on_the_luck_of_the_seeding() -> None:
    from loyalty.recommender.stats import group_factors, item_clusters

    rng = np.random.default_rng(0)
    # Three big taste groups and four small ones, a little buying across them.
    sizes, members = (30, 30, 30, 8, 8, 8, 8), (150, 150, 150, 30, 30, 30, 30)
    x = sp.block_diag([_random_incidence(rng, m, n, 0.3) for n, m in zip(sizes, members, strict=True)], format="csr")
    x = (x + sp.csr_matrix((rng.random(x.shape) < 0.003).astype(np.float32))).tocsr()
    x.data[:] = 1.0
    buyers = np.asarray(x.sum(axis=0)).ravel()
    v, strength = group_factors(x, buyers, 10)
    edges = np.cumsum((0,) + sizes)

    def found(groups: np.ndarray) -> bool:  # every taste group whole, each under its own label
        whole = all(len(set(groups[a:b].tolist())) == 1 for a, b in zip(edges[:-1], edges[1:], strict=True))
        return whole and len(set(groups.tolist())) == len(sizes)

    assert all(found(item_clusters(v, buyers, 7, strength, seed=s)) for s in range(10))
    # Straight k-means to 7 groups (no over-clustering) cuts a group for some of the same seeds.
    assert not all(found(item_clusters(v, buyers, 7, strength, seed=s, over=1)) for s in range(10))


def test_no_groups_are_made_when_none_are_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from loyalty.recommender import stats as stats_module

    rng = np.random.default_rng(9)
    x = sp.block_diag([_random_incidence(rng, 60, 10, 0.5) for _ in range(3)], format="coo")
    u, i = x.row.astype(np.int64), x.col.astype(np.int64)
    t = np.arange(u.size, dtype=np.float64) * 3600.0
    order = np.lexsort((t, u))
    u, i, t = u[order], i[order], t[order]
    b = np.arange(u.size, dtype=np.int64)  # one line per order
    sizes: list[int] = []  # the k each group_factors call was asked for
    real = stats_module.group_factors

    def watched(binary: sp.csr_matrix, buyers: np.ndarray, k: int, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
        sizes.append(k)
        return real(binary, buyers, k, seed)

    monkeypatch.setattr(stats_module, "group_factors", watched)

    def stats(clusters: int) -> np.ndarray:
        return stats_module.item_stats(u, i, t, b, 180, 30, shrink=5.0, neighbours=20, rank_decay=0.8,
                                       factors=4, clusters=clusters).clusters

    assert (stats(0) == -1).all()
    assert sizes == [0]  # no second SVD when no groups are asked for
    made = stats(3)
    assert sizes == [0, 4]  # at least as many factors as PureSVD's (4)
    assert [len(set(made[g * 10:(g + 1) * 10].tolist())) for g in range(3)] == [1, 1, 1]
    stats(6)
    stats(20)
    assert sizes == [0, 4, 6, 8]  # one per group, up to twice PureSVD's


def test_the_number_of_learned_groups_follows_the_items_sold() -> None:
    from loyalty.recommender.stats import group_count

    buyers = np.zeros(60_000)
    buyers[:5_000] = 3.0
    assert group_count(buyers, -1) == 25  # one per 200 sold items
    buyers[:] = 1.0
    assert group_count(buyers, -1) == 300
    assert group_count(buyers[:100], -1) == 8  # never fewer than 8
    assert group_count(np.ones(200_000), -1) == 512  # nor more than 512
    assert group_count(buyers, 3) == 3 and group_count(buyers, 0) == 0


def test_each_groups_best_items_are_read_from_a_cached_index() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 0], [1, 0, 0, 0, 0]], dtype=np.float32))
    u, i = x.nonzero()
    st = item_stats(u, i, np.arange(u.size, dtype=np.float64), np.arange(u.size), 3, 5, shrink=0,
                    neighbours=5, rank_decay=0.8)
    group = np.array([0, 0, 0, 1, -1])  # buyers 3, 1, 1 in group 0; item 3 alone; item 4 none
    indptr, best = st.group_best(group, 2)
    assert best[indptr[0]:indptr[1]].tolist() == [0, 1]  # most buyers first, ties by index
    assert best[indptr[1]:indptr[2]].tolist() == [3]
    assert st.group_best(group, 2)[1] is best  # computed once per group array
