"""Compiled loops for the parts of a request that NumPy would take dozens of small calls for.

A request's time was the sum of some three hundred NumPy calls of a few microseconds each
(docs/recommender.md, eleventh pass); these loops do the same work in one call each.
numba compiles a function on its first use and keeps the machine code beside this file
(``cache=True``), so a process pays for the compilation once per machine, not per request;
``Recommender.prepare`` has them compiled (or loaded) when a model is loaded. ``nogil``: a
serving process's threads run them side by side.
"""

from __future__ import annotations

import numba
import numpy as np

from loyalty.recommender.data import DAY

EPS = 1e-4  # keeps logs of zero scores and shares of empty totals finite
# error_model "numpy": a division by zero gives inf or nan, as NumPy's would, rather than raising.
_TREE_BLOCK = 64  # rows walked together through each tree (a request's shortlist is 32)
_JIT = {"cache": True, "nogil": True, "nopython": True, "error_model": "numpy"}
# For a loop whose sums may be added in any order (vector registers): only where the result picks
# items (a near tie at the last place may go either way), never where it is a feature's value.
_JIT_ANY_ORDER = {**_JIT, "fastmath": {"reassoc", "contract"}}


@numba.jit(**_JIT)
def tree_scores(x: np.ndarray, roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                children: np.ndarray, value: np.ndarray, depth: int, bias: float) -> np.ndarray:
    """Per row of x, bias + the leaf value each tree sends it to.

    ``children[2 * node + 1]`` is the left child (taken when x[feature] <= threshold),
    ``children[2 * node]`` the right one; a leaf is its own child.

    Tree by tree, level by level across the rows: a tree's nodes stay in the processor's
    cache for every row, and the rows' walks, independent of each other, overlap (row by row,
    each step waited for the one before: twice the time). The trees are added in their order.
    """
    out = np.full(x.shape[0], bias)
    node = np.empty(_TREE_BLOCK, dtype=np.int64)
    for start in range(0, x.shape[0], _TREE_BLOCK):  # blocks of rows that stay in cache too
        end = min(start + _TREE_BLOCK, x.shape[0])
        for t in range(roots.size):
            node[:] = roots[t]
            for _ in range(depth):
                for r in range(start, end):
                    at = node[r - start]
                    node[r - start] = children[2 * at + (1 if x[r, feature[at]] <= threshold[at] else 0)]
            for r in range(start, end):
                out[r] += value[node[r - start]]
    return out


@numba.jit(**_JIT)
def _worse(v: float, i: int, w: float, j: int) -> bool:
    """Whether value v at position i ranks below value w at position j (ties: the later one)."""
    return v < w or (v == w and i > j)


@numba.jit(**_JIT)
def _heap_add(heap_v: np.ndarray, heap_i: np.ndarray, size: int, v: float, i: int) -> int:
    """Put (v, i) into a heap whose root is its worst entry; the new size."""
    c = size
    while c > 0:
        parent = (c - 1) // 2
        if not _worse(v, i, heap_v[parent], heap_i[parent]):
            break
        heap_v[c], heap_i[c] = heap_v[parent], heap_i[parent]
        c = parent
    heap_v[c], heap_i[c] = v, i
    return size + 1


@numba.jit(**_JIT)
def _heap_replace_root(heap_v: np.ndarray, heap_i: np.ndarray, size: int, v: float, i: int) -> None:
    """Drop the heap's worst entry for (v, i)."""
    c = 0
    while True:
        child = 2 * c + 1
        if child >= size:
            break
        if child + 1 < size and _worse(heap_v[child + 1], heap_i[child + 1], heap_v[child], heap_i[child]):
            child += 1
        if not _worse(heap_v[child], heap_i[child], v, i):
            break
        heap_v[c], heap_i[c] = heap_v[child], heap_i[child]
        c = child
    heap_v[c], heap_i[c] = v, i


@numba.jit(**_JIT)
def _heap_offer(heap_v: np.ndarray, heap_i: np.ndarray, size: int, n: int, v: float, i: int) -> int:
    """Offer (v, i) to a heap that keeps the n best (its root the worst of them); the new size.
    Most offers, once the heap is full, are turned away by one comparison with the root."""
    if size < n:
        return _heap_add(heap_v, heap_i, size, v, i)
    if size and _worse(heap_v[0], heap_i[0], v, i):
        _heap_replace_root(heap_v, heap_i, size, v, i)
    return size


@numba.jit(**_JIT)
def top_k(scores: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores where ``keep`` is set, best first (of equal scores,
    the lower position first): one pass with a heap of k, then the heap in order."""
    k = max(min(k, scores.size), 0)
    heap_v = np.empty(k)
    heap_i = np.empty(k, dtype=np.int64)
    size = 0
    for j in range(scores.size if k > 0 else 0):
        if keep[j]:
            size = _heap_offer(heap_v, heap_i, size, k, scores[j], j)
    out = np.empty(size, dtype=np.int64)
    for n in range(size - 1, -1, -1):  # the worst comes off the root first
        out[n] = heap_i[0]
        size -= 1
        if size:
            _heap_replace_root(heap_v, heap_i, size, heap_v[size], heap_i[size])
    return out


@numba.jit(**_JIT_ANY_ORDER)  # the products summed in vector registers: 59 -> 23 us for ~1,000 rows
def longest_first_top(rows: np.ndarray, length: np.ndarray, q: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Positions of the n rows with the highest positive product with q (of equal ones, the
    first), reading the rows in their order, longest first (``length``, descending), and
    stopping at the first row too short to beat the n-th best found: x . q <= |x| |q|.
    Also the number of rows read."""
    heap_v = np.empty(max(n, 0))
    heap_i = np.empty(max(n, 0), dtype=np.int64)
    size = 0
    read = 0
    reach = np.sqrt(np.sum(q.astype(np.float64) ** 2)) * (1.0 + 1e-4)  # headroom for float32 rounding
    for r in range(rows.shape[0] if n > 0 else 0):
        if size == n and length[r] * reach < heap_v[0]:
            break
        read += 1
        v = 0.0
        for f in range(rows.shape[1]):
            v += rows[r, f] * q[f]
        if v > 0.0:
            size = _heap_offer(heap_v, heap_i, size, n, v, r)
    return heap_i[:size].copy(), read


@numba.jit(**_JIT)
def _best_n(values: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The labels and values of the n highest values (of equal ones at the n-th place, the
    first), in their order."""
    m = values.size
    if m <= n or n <= 0:
        keep = m if n > 0 else 0
        return labels[:keep].copy(), values[:keep].copy()
    bar = np.partition(values, m - n)[m - n]  # the n-th highest
    out_l = np.empty(n, dtype=labels.dtype)
    out_v = np.empty(n)
    k = 0
    for j in range(m):
        if values[j] > bar:
            out_l[k], out_v[k] = labels[j], values[j]
            k += 1
    for j in range(m):
        if k == n:
            break
        if values[j] == bar:
            out_l[k], out_v[k] = labels[j], values[j]
            k += 1
    return out_l, out_v


@numba.jit(**_JIT)
def _similar_members(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, items: np.ndarray,
                    weights: np.ndarray, user: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k members with the highest positive ``weights @ m[items]``, for a CSR matrix m of
    items x members given by its arrays, and those sums; ``user`` is never one of them (of equal
    sums at the k-th place, the first reached).

    The sums are kept in a hash table sized to the entries read (a few thousand members), which
    stays in the processor's cache where a slot per member of the chain would not.
    """
    n_entries = 0
    for j in range(items.size):
        n_entries += indptr[items[j] + 1] - indptr[items[j]]
    bits = 4
    while (1 << bits) < 2 * n_entries:
        bits += 1
    mask = (1 << bits) - 1
    slot_of = np.full(1 << bits, -1, dtype=np.int32)  # hash slot -> position in members / sums
    members = np.empty(n_entries, dtype=np.int64)
    sums = np.zeros(n_entries)
    n = 0
    for j in range(items.size):
        for p in range(indptr[items[j]], indptr[items[j] + 1]):
            member = np.int64(indices[p])
            if member == user:
                continue
            h = np.int64((np.uint64(member) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))
            while slot_of[h] >= 0 and members[slot_of[h]] != member:
                h = (h + 1) & mask
            at = slot_of[h]
            if at < 0:
                at = slot_of[h] = n
                members[n] = member
                n += 1
            sums[at] += weights[j] * data[p]
    m = 0  # the positive ones, in order
    for j in range(n):
        if sums[j] > 0.0:
            members[m], sums[m] = members[j], sums[j]
            m += 1
    return _best_n(sums[:m], members[:m], k)


@numba.jit(**_JIT)
def probe_neighbours(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, items: np.ndarray,
                     values: np.ndarray, probe: int, user: int, k: int, row_norms: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`ItemStats.neighbours` in one call: the ``probe`` items of highest value (of equal
    values, the first) look for the k most similar members (:func:`_similar_members`, the
    values divided by the length of all of them); each member's weight is their similarity
    over the sum of the similarities, times ``row_norms`` of their row."""
    norm = np.sqrt(np.sum(values**2))
    if norm == 0.0 or indices.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    pick = _best_n(values, np.arange(values.size), probe)[0]
    rows, sims = _similar_members(indptr, indices, data, items[pick], values[pick] / norm, user, k)
    total = np.sum(sims)
    weights = np.empty(rows.size)
    for j in range(rows.size):
        weights[j] = sims[j] * row_norms[rows[j]] / total
    return rows, weights


@numba.jit(**_JIT)
def spread_touched(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray,
                   w0: np.ndarray, w1: np.ndarray, out0: np.ndarray, out1: np.ndarray,
                   seen: np.ndarray, touched: np.ndarray, count: int) -> int:
    """out0 += w0 @ m[rows], and out1 += w1 @ m[rows] unless w1 is empty, for a CSR matrix m
    given by its arrays (one weight per taken row), added row by row as scipy's product does.

    Each column reached for the first time is set in the bitmap ``seen`` and appended to
    ``touched`` after its first ``count`` entries; the new count is returned. Writing straight
    into dense arrays costs no more than scipy's product, and the caller reads and clears the
    touched cells only.
    """
    two = w1.size > 0
    for r in range(rows.size):
        a = w0[r]
        b = w1[r] if two else 0.0
        for e in range(indptr[rows[r]], indptr[rows[r] + 1]):
            col = np.uint32(indices[e])  # unsigned: no negative-index wraparound per entry
            word, bit = col >> 6, np.uint64(1) << np.uint64(col & 63)
            if not seen[word] & bit:
                seen[word] |= bit
                touched[count] = col
                count += 1
            v = np.float64(data[e])
            out0[col] += a * v
            if two:
                out1[col] += b * v
    return count


@numba.jit(**_JIT)
def add_cells(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray,
              cols: np.ndarray, out: np.ndarray) -> None:
    """out[i, j] += m[rows[i], cols[j]] for a CSR matrix m given by its arrays, in canonical form
    (each row's columns sorted, none twice): each cell is looked up by bisecting its row, so a
    popular item's long row costs a few steps per column asked, not a pass over it."""
    for i in range(rows.size):
        lo, hi = indptr[rows[i]], indptr[rows[i] + 1]
        for j in range(cols.size):
            c = cols[j]
            a, b = lo, hi
            while a < b:
                mid = (a + b) >> 1
                if indices[mid] < c:
                    a = mid + 1
                else:
                    b = mid
            if a < hi and indices[a] == c:
                out[i, j] += np.float64(data[a])


@numba.jit(**_JIT)
def union_with_own(own_items: np.ndarray, others: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct items of ``own_items`` (ascending, distinct) and ``others`` (items >= 0, any
    order, repeated), ascending; for each, whether it is one of ``own_items`` and where (0 when
    it is not). A bitmap of the items met drops the repeats (the sources' best lists overlap:
    ~650 items, ~70 new), so only the new ones are sorted before the merge."""
    hi = 0
    for v in own_items:
        hi = max(hi, v)
    for v in others:
        hi = max(hi, v)
    seen = np.zeros(hi // 64 + 1, dtype=np.uint64)
    for v in own_items:
        seen[v >> 6] |= np.uint64(1) << np.uint64(v & 63)
    new = np.empty(others.size, dtype=np.int64)
    m = 0
    for v in others:
        bit = np.uint64(1) << np.uint64(v & 63)
        if not seen[v >> 6] & bit:
            seen[v >> 6] |= bit
            new[m] = v
            m += 1
    rest = np.sort(new[:m])
    items = np.empty(own_items.size + m, dtype=np.int64)
    pos = np.zeros(items.size, dtype=np.int64)
    bought = np.zeros(items.size, dtype=np.bool_)
    a = b = 0
    for n in range(items.size):  # two ascending lists with nothing in common
        if b == m or (a < own_items.size and own_items[a] < rest[b]):
            items[n], pos[n], bought[n] = own_items[a], a, True
            a += 1
        else:
            items[n] = rest[b]
            b += 1
    return items, pos, bought


@numba.jit(**_JIT)
def top_touched(values: np.ndarray, touched: np.ndarray, n: int) -> np.ndarray:
    """The n columns of ``touched`` with the highest positive values (of equal ones at the
    n-th place, the first touched), in any order: one pass with a heap of n, in which most
    cells are turned away by one comparison with its worst (a partition of the values took
    1.6 times as long)."""
    heap_v = np.empty(max(n, 0))
    heap_i = np.empty(max(n, 0), dtype=np.int64)
    size = 0
    for j in range(touched.size if n > 0 else 0):
        v = values[touched[j]]
        if v > 0.0:  # of equal values, the one touched later ranks below
            size = _heap_offer(heap_v, heap_i, size, n, v, j)
    out = np.empty(size, dtype=np.int64)
    for k in range(size):
        out[k] = touched[heap_i[k]]
    return out


@numba.jit(**_JIT)
def _stable_order(keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable") for integer keys, faster: nothing to do for keys already
    in order (a history's orders usually are), else a quicksort of key x n + position, which
    has no equal keys (numba's merge sort takes twice as long)."""
    n = keys.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ascending = True
    for k in range(1, n):
        if keys[k] < keys[k - 1]:
            ascending = False
            break
    if ascending:
        return np.arange(n)
    lo = np.int64(keys.min())
    if float(keys.max()) - float(lo) >= 2.0**62 / n:  # (key - lowest) x n would overflow
        return np.argsort(keys, kind="mergesort")
    return np.argsort((keys.astype(np.int64) - lo) * n + np.arange(n))


@numba.jit(**_JIT)
def member_items(item: np.ndarray, time: np.ndarray, basket: np.ndarray, now: float,
                 half_lives: np.ndarray, rank_decay: float, gap_days: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One member's distinct items (ascending) with what the features read of each, from the
    member's lines (one per order and item, any order).

    Per item, columns: 0 orders, 1 and 2 the orders decayed by ``half_lives[0]`` (short) and
    ``[1]`` (long), 3 the last purchase's time, 4 the share of rank-decayed orders (the latest
    order weighs 1, the one before ``rank_decay``...), 5 in the latest order (0/1), 6 the
    member's own days between purchases of it, shrunk towards the item's typical gap (one
    prior interval from ``gap_days``), 7 the orders decayed by ``half_lives[2]`` (the profile).
    Member: the number of orders, the short- and long-decayed order totals, the share of
    lines that were re-buys, log(1 + days since the latest order). An order's time is its
    first line's; orders of the same age rank in order of their numbers.
    """
    n = item.size
    by_basket = _stable_order(basket)
    order_of_line = np.empty(n, dtype=np.int64)
    age = np.empty(n)
    n_orders = 0
    for k in range(n):
        p = by_basket[k]
        if k == 0 or basket[p] != basket[by_basket[k - 1]]:
            age[n_orders] = max(now - time[p], 0.0) / DAY
            n_orders += 1
        order_of_line[p] = n_orders - 1
    order_age = age[:n_orders]
    rank = np.empty(n_orders, dtype=np.int64)
    by_age = np.argsort(order_age, kind="mergesort")  # few orders; float keys
    for r in range(n_orders):
        rank[by_age[r]] = r
    member = np.zeros(5)
    member[0] = n_orders
    rank_total = 0.0
    rank_weight = np.empty(n_orders)
    for b in range(n_orders):
        member[1] += np.exp2(-order_age[b] / half_lives[0])
        member[2] += np.exp2(-order_age[b] / half_lives[1])
        rank_weight[b] = rank_decay ** rank[b]
        rank_total += rank_weight[b]
    # Each line's three decays, computed once per distinct time (an order's lines share theirs).
    decay = np.empty((n, 3))
    for k in range(n):
        p = by_basket[k]
        q = by_basket[k - 1] if k else p
        if k and time[p] == time[q]:
            decay[p] = decay[q]
        else:
            days = max(now - time[p], 0.0) / DAY
            for h in range(3):
                decay[p, h] = np.exp2(-days / half_lives[h])
    by_item = _stable_order(item)
    uniq = np.empty(n, dtype=np.int64)
    own = np.zeros((n, 8))
    first = np.empty(n)
    latest = -np.inf
    m = -1
    for k in range(n):
        p = by_item[k]
        if k == 0 or item[p] != item[by_item[k - 1]]:
            m += 1
            uniq[m] = item[p]
            first[m] = time[p]
            own[m, 3] = time[p]
        b = order_of_line[p]
        own[m, 0] += 1.0
        own[m, 1] += decay[p, 0]
        own[m, 2] += decay[p, 1]
        own[m, 3] = max(own[m, 3], time[p])
        own[m, 4] += rank_weight[b]
        own[m, 5] += 1.0 if rank[b] == 0 else 0.0
        own[m, 7] += decay[p, 2]
        first[m] = min(first[m], time[p])
        latest = max(latest, time[p])
    n_items = m + 1
    for j in range(n_items):
        own[j, 4] /= max(rank_total, EPS)
        own[j, 6] = ((own[j, 3] - first[j]) / DAY + gap_days[uniq[j]]) / own[j, 0]
    if n:
        member[3] = 1.0 - n_items / n
        member[4] = np.log1p(max(now - latest, 0.0) / DAY)
    return uniq[:n_items], own[:n_items], member


@numba.jit(**_JIT)
def group_top(group: np.ndarray, items: np.ndarray, weights: np.ndarray, indptr: np.ndarray,
              best: np.ndarray, in_group: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A member's share of weight per group, and the n items with the highest share of their
    group x in-group share (positive only) among the best items of the member's groups.

    ``group``: each item's group (-1: none); ``items`` and ``weights``: the member's items and
    their weights; ``best[indptr[g]:indptr[g + 1]]``: group g's items, highest in-group share
    first. Each group's list is already in order, so the lists are merged through a heap of
    their heads and only the n items taken are ever scored.
    """
    share = np.zeros(indptr.size - 1)
    total = 0.0
    for j in range(items.size):
        total += weights[j]
        g = group[items[j]]
        if g >= 0:
            share[g] += weights[j]
    groups = 0
    for g in range(share.size):
        share[g] /= total
        if share[g] > 0 and indptr[g + 1] > indptr[g]:
            groups += 1
    # A heap of the groups' heads, the best on top: _heap_add keeps its worst entry on top, so
    # the scores go in negated (of equal scores, the one further down the lists comes first).
    heap_v = np.empty(groups)
    heap_i = np.empty(groups, dtype=np.int64)
    size = 0
    for g in range(share.size):
        if share[g] > 0 and indptr[g + 1] > indptr[g]:
            size = _heap_add(heap_v, heap_i, size, -share[g] * in_group[best[indptr[g]]], indptr[g])
    top = np.empty(max(n, 0), dtype=np.int64)
    k = 0
    while k < n and size > 0:
        v, p = -heap_v[0], heap_i[0]
        if v <= 0.0:  # every head left scores 0
            break
        top[k] = best[p]
        k += 1
        if p + 1 < indptr[group[best[p]] + 1]:  # the next of the same group's list
            _heap_replace_root(heap_v, heap_i, size, -share[group[best[p]]] * in_group[best[p + 1]], p + 1)
        else:
            size -= 1
            if size > 0:
                _heap_replace_root(heap_v, heap_i, size, heap_v[size], heap_i[size])
    return share, top[:k]


@numba.jit(**_JIT)
def group_columns(x: np.ndarray, col: int, items: np.ndarray, group: np.ndarray, share: np.ndarray,
                  in_group: np.ndarray) -> None:
    """x[:, col] = the member's share of the item's group (:func:`group_top`'s ``share``, 0
    without a group) and x[:, col + 1] = log(that share x the item's in-group share + EPS)."""
    for r in range(items.size):
        g = group[items[r]]
        s = share[g] if g >= 0 else 0.0
        x[r, col] = s
        x[r, col + 1] = np.log(s * in_group[items[r]] + EPS)


@numba.jit(**_JIT)
def feature_rows(x: np.ndarray, items: np.ndarray, pos: np.ndarray, bought: np.ndarray,
                 own: np.ndarray, member: np.ndarray, now: float, log_buyers: np.ndarray,
                 repeat_logit: np.ndarray, gap_days: np.ndarray, recent: np.ndarray, cf: np.ndarray,
                 relative: np.ndarray) -> None:
    """Fill the candidates' feature rows (see ``features.FEATURES`` for what each column is).

    ``own`` and ``member``: :func:`member_items`'s (``pos`` finds a bought candidate's row in
    ``own``). ``log_buyers``, ``repeat_logit``,
    ``gap_days``: per item of the catalogue. ``recent``: rows 30- and 7-day sales per candidate; ``cf``:
    rows cf_user, cf_flat, cf_next, cf_ease, cf_knn over the catalogue (one 2-D array: a tuple
    of arrays is typed in Python on every call, 5-10 us an array). Columns 21-23 and 26-27 are
    filled by the caller beforehand; the relative columns (29 on) restate ``relative``'s
    columns against the best row not bought (all rows when every candidate was bought).
    """
    n_orders, tot_short, tot_long, user_repeat, idle = member
    eps = EPS
    for r in range(items.size):
        i = items[r]
        b = 1.0 if bought[r] else 0.0
        orders = rec = steady = last = rank_share = in_last = own_gap = 0.0
        if bought[r]:
            p = pos[r]
            orders, rec, steady, last = own[p, 0], own[p, 1], own[p, 2], own[p, 3]
            rank_share, in_last, own_gap = own[p, 4], own[p, 5], own[p, 6]
        days_since = max(now - last, 0.0) / DAY
        sales_30 = np.log1p(recent[0, r])
        x[r, 0] = b
        x[r, 1] = np.log1p(orders)
        x[r, 2] = orders / max(n_orders, 1.0)
        x[r, 3] = rec / max(tot_short, eps)
        x[r, 4] = steady / max(tot_long, eps)
        x[r, 5] = b * np.log1p(days_since)
        x[r, 6] = b * repeat_logit[i]
        x[r, 7] = np.log(cf[0, i] + eps)
        x[r, 8] = np.log(cf[2, i] + eps)
        x[r, 9] = sales_30
        x[r, 10] = log_buyers[i]
        x[r, 11] = b * np.log1p(n_orders)
        x[r, 12] = np.log(cf[3, i] + eps)
        x[r, 13] = b * user_repeat
        x[r, 14] = b * sales_30
        x[r, 15] = rank_share
        x[r, 16] = b * np.log1p(days_since / gap_days[i])
        x[r, 17] = np.log1p(recent[1, r])
        x[r, 18] = in_last
        x[r, 19] = np.log(cf[4, i] + eps)
        x[r, 20] = idle
        x[r, 24] = b * np.log1p(days_since / max(own_gap, 1.0))
        x[r, 25] = b * np.log1p(own_gap)
        x[r, 28] = np.log(cf[1, i] + eps)
    any_fresh = False
    for r in range(items.size):
        any_fresh = any_fresh or not bought[r]
    for j in range(relative.size):
        c = relative[j]
        best = -np.inf
        for r in range(items.size):
            if (not bought[r] or not any_fresh) and x[r, c] > best:
                best = x[r, c]
        for r in range(items.size):
            x[r, 29 + j] = x[r, c] - best
