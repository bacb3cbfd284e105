"""Training time, peak memory and in-process serving latency of the recommender at chain scale.

Run by hand, one size per process (peak RSS is the process's). Example, on a
file from bench/synth_chain.py:

    nice .venv/bin/python bench/reco_scale.py /tmp/chain-1000000.csv --save /tmp/models
    .venv/bin/python bench/reco_scale.py --model /tmp/models     # serving only, a saved model

Prints: lines, members, SKUs; fit seconds; peak resident memory; model file
size; recommend() p50/p95 for members with the longest histories, the first
call (cold) and a repeated call within the hour (cached per member), against
the buy-again baseline's answer for the same members in the same process.
With ``--model`` the process first answers the next-longest histories once,
as a server that has been running would have (the timed members stay cold).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bench.reco_baselines import BuyAgain  # noqa: E402
from bench.reco_data import CleanRules, ColumnMap, load_numeric  # noqa: E402
from loyalty.recommender import store  # noqa: E402
from loyalty.recommender.data import Interactions  # noqa: E402
from loyalty.recommender.model import Recommender, serve_single_threaded  # noqa: E402

SYNTH = ColumnMap(user="member", item="sku", basket="order_id", time="paid_at", qty="qty", price=None,
                  category="category")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pct(ms: list[float]) -> tuple[float, float]:
    a = np.asarray(ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", nargs="?", help="an all-integer transactions CSV (bench/synth_chain.py)")
    p.add_argument("--members", type=int, default=500, help="long-history members to time")
    p.add_argument("--save", help="also save the model into this directory and time loading it")
    p.add_argument("--model", help="time the newest saved model of this directory (no CSV read, no fit)")
    a = p.parse_args(argv)
    if a.model:
        return _serve_only(a.model, a.members)
    if not a.csv:
        p.error("give a CSV to train on, or --model DIR to time a saved model")
    t0 = time.perf_counter()
    tx, _ = load_numeric(a.csv, SYNTH, CleanRules(cancel_prefix=None, exclude_items=None))
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    print(f"lines {tx.user.size:,}, members {tx.n_users:,}, SKUs {tx.n_items:,} "
          f"(read in {load_s:.0f} s, peak RSS so far {rss_loaded:,.0f} MB)")
    data = Interactions(tx.user, tx.item, tx.time.astype(np.float64), tx.basket)
    now = float(tx.time.max() // 3600 * 3600) + 3600.0 + 60.0  # early in an hour
    lines_per_user = np.bincount(tx.user, minlength=tx.n_users)
    category = tx.item_category
    del tx
    t0 = time.perf_counter()
    model = Recommender().fit(data, int(lines_per_user.size), int(data.item.max()) + 1, category=category)
    fit_s = time.perf_counter() - t0
    print(f"fit {fit_s:.0f} s; peak RSS of the process {_rss_mb():,.0f} MB")
    if a.save:
        path = store.save(model, a.save)
        t0 = time.perf_counter()
        model = store.load(path)
        print(f"model file {os.path.getsize(path) / 2**20:,.0f} MB, loaded in {time.perf_counter() - t0:.1f} s")
    base = BuyAgain()
    from bench.reco_data import Transactions

    base.fit(Transactions(np.zeros(model.n_users), np.zeros(model.n_items), data.user, data.item,
                          data.basket, data.time.astype(np.int64), np.ones(data.user.size)))
    longest = np.argsort(-lines_per_user, kind="stable")[: a.members]
    print(f"timed members: the {longest.size} with the longest histories "
          f"({int(lines_per_user[longest].min())}-{int(lines_per_user[longest].max())} lines)")
    model.cache_size = 20_000
    serve_single_threaded()  # as loyalty.recommender.service does in a serving process
    cold, warm, ref = [], [], []
    for u in longest:
        t1 = time.perf_counter()
        model.recommend(int(u), 10, now=now)
        cold.append((time.perf_counter() - t1) * 1000.0)
    for u in longest:
        t1 = time.perf_counter()
        model.recommend(int(u), 10, now=now + 60.0)
        warm.append((time.perf_counter() - t1) * 1000.0)
    for u in longest:
        t1 = time.perf_counter()
        base.recommend(int(u), 10, None, int(now))
        ref.append((time.perf_counter() - t1) * 1000.0)
    print(f"{'recommend(k=10)':<34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, v in (("ours, first call (cold)", cold), ("ours, again within the hour", warm),
                    ("buy-again baseline", ref)):
        p50, p95 = _pct(v)
        print(f"{name:<34} {p50:>8.2f} {p95:>8.2f}")
    print(f"ratio ours cold / buy-again at p95: x{_pct(cold)[1] / _pct(ref)[1]:.1f}")
    return 0


def _serve_only(directory: str, members: int) -> int:
    """Latency of a saved model for its longest histories, cold then cached."""
    path = store.newest(directory)
    if path is None:
        print(f"error: no model in {directory}", file=sys.stderr)
        return 2
    model = store.load(path)
    assert model.history is not None
    lines = np.diff(model.history.indptr)
    by_length = np.argsort(-lines, kind="stable")
    longest, others = by_length[:members], by_length[members:2 * members]
    now = float(model.trained_at // 3600 * 3600) + 3600.0 + 60.0
    model.cache_size = 20_000
    serve_single_threaded()
    model.prepare()  # as the service does when it loads a model
    # A running server has answered other members before: the next-longest histories, once each
    # (the hour's trending lists, and the model's pages and caches as traffic leaves them).
    for u in others:
        model.recommend(int(u), 10, now=now)
    print(f"model {path.name}: {model.n_users:,} members, {model.n_items:,} SKUs; timed members: the "
          f"{longest.size} with the longest histories ({int(lines[longest].min())}-{int(lines[longest].max())} lines)")
    later = now + 3600.0  # the next hour: every member is cold again
    model.recommend(int(others[0]) if others.size else 0, 10, now=later)
    for name, at, discovery in (("first call of the hour (cold)", now, False),
                                ("again within the hour", now + 60.0, False),
                                ("discovery only, cold (next hour)", later, True)):
        ms = []
        for u in longest:
            t1 = time.perf_counter()
            model.recommend(int(u), 10, now=at, exclude_bought=discovery)
            ms.append((time.perf_counter() - t1) * 1000.0)
        p50, p95 = _pct(ms)
        print(f"{name:<34} p50 {p50:>6.2f} ms  p95 {p95:>6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
