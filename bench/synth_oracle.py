"""How far a recommender could get on a synthetic chain: its generator's own probabilities.

Run by hand, on a file from bench/synth_chain.py and the same shape options it
was written with (the chain is generated again, its hidden parameters kept,
and checked line for line against the file):

    .venv/bin/python bench/synth_oracle.py /tmp/c10k.csv --members 10000 --skus 5000 \\
        --lines 300000 [--validation]

It asks the harness's 30-day question in "all" mode (which items will the
member buy in the next 30 days; the same split and test members as
bench/eval_recommender.py) and ranks every item by the probability the
generator gives it, knowing what no model can see: each member's staples,
their cadences and how many times they will still be bought, the favourite
categories and the popularity inside each category, the seasons and
launches. The member's future trips stay unknown: as many as their past rate
says, on the window's middle day. With ``--cadence estimated`` each staple's
start and cadence come from the lines instead (``estimated_staples``): how much
of the lead the lines themselves allow, everything else still known. Printed:
NDCG@10 and Recall@10 of that ranking and of buy-again on the same members, and
the ratio. A ratio well
over 1.10 says the file leaves room for a model to lead buy-again by that
much; ours is in bench/eval_recommender.py's table.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import synth_chain  # noqa: E402
from bench.reco_baselines import BuyAgain, basket_counts, popularity_tiebreak  # noqa: E402
from bench.reco_data import CleanRules, ColumnMap, Split, Transactions, load_numeric, time_split  # noqa: E402
from bench.reco_metrics import mean_scores, user_metrics  # noqa: E402

DAY = synth_chain.DAY
KEEP, JITTER, FROM_FAVOURITE = synth_chain.STAPLE_KEEP, synth_chain.STAPLE_JITTER, synth_chain.FROM_FAVOURITE


def hidden(shape: synth_chain.ChainShape, csv: str) -> dict[str, np.ndarray]:
    """The generator's parameters for every member, after checking the file is this chain."""
    parts: list[dict[str, np.ndarray]] = []
    blocks = list(synth_chain.chunks(shape, truth=parts))
    lines = np.vstack(blocks)[:, :4]
    written = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.int64, usecols=(0, 1, 2, 3), ndmin=2)
    if written.shape != lines.shape or not np.array_equal(written, lines):
        raise SystemExit(f"{csv} is not the chain of these options (generate it with the same ones)")
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key != "lines_per_trip"}
    out["lines_per_trip"] = np.array([float(np.mean([p["lines_per_trip"][0] for p in parts]))])
    return out


def explore_per_line(truth: dict[str, np.ndarray], cat: synth_chain.Catalogue, member: int, day: float,
                     days: int) -> np.ndarray:
    """Per SKU, the chance that one of ``member``'s exploration lines on ``day`` is it."""
    favourites = truth["fav_cat"][truth["fav_member"] == member]
    pick = (1.0 - FROM_FAVOURITE) * cat.cat_weight
    np.add.at(pick, favourites, FROM_FAVOURITE / favourites.size)
    season = 1.0 + cat.season_amp * np.cos(2 * np.pi * (day - cat.peak_day) / days)
    off = np.clip(1.0 - season / 2.0, 0.0, 1.0)  # off season: the first favourite instead
    moved = float((pick * off).sum())
    pick = pick * (1.0 - off)
    pick[favourites[0]] += moved
    inside = np.zeros(cat.category.size)  # each SKU's chance when its category is picked (Zipf)
    for c, cdf in enumerate(cat.cat_cdf):
        inside[cat.cat_start[c]:cat.cat_start[c + 1]] = np.diff(cdf, prepend=0.0)
    return pick[cat.category] * inside * (cat.launch_day <= day)


def oracle_scores(truth: dict[str, np.ndarray], cat: synth_chain.Catalogue, member: int, cut: float,
                  end: float, days: int) -> np.ndarray:
    """Per SKU, the probability the generator gives it of being bought by ``member`` in (cut, end]."""
    n_skus = cat.category.size
    log_miss = np.zeros(n_skus)
    trips = np.sort(truth["trip_time"][truth["trip_member"] == member])
    before = trips[trips <= cut]
    start = float(before.max()) if before.size else -np.inf
    # Staples: a kept purchase due after the member's last trip before the cut is made on their
    # next trip, so inside the window if it is due by its end.
    # A staple may come as a mixture of cadences (estimated_staples): its miss is their weighted mean.
    weights = truth.get("staple_weight")
    for j in np.flatnonzero(truth["staple_member"] == member):
        cadences, runs = np.atleast_1d(truth["staple_cadence"][j]), np.atleast_1d(truth["staple_events"][j])
        miss = 0.0
        for n, (cadence, run) in enumerate(zip(cadences, runs, strict=True)):
            w = weights[j][n] if weights is not None else 1.0
            if w == 0.0:
                continue
            k = np.arange(run)
            due = truth["staple_first"][j] + k * cadence
            spread = np.maximum(JITTER * k * cadence, 1.0)
            p = KEEP * np.clip(ndtr((end - due) / spread) - ndtr((start - due) / spread), 0.0, 1.0)
            miss += w * np.exp(np.log1p(-np.minimum(p, 1 - 1e-12)).sum())
        log_miss[truth["staple_item"][j]] += np.log(max(miss, 1e-300))
    # Exploration lines on the trips their past rate promises, on the window's middle day.
    rate = before.size / max((cut - before.min()) / DAY, 30.0) if before.size else 0.0
    trips_ahead = max(rate * (end - cut) / DAY, 1.0)
    day = ((cut + end) / 2.0 - synth_chain.START) / DAY
    per_line = explore_per_line(truth, cat, member, day, days)
    log_miss += trips_ahead * truth["lines_per_trip"][0] * np.log1p(-np.minimum(per_line, 1 - 1e-12))
    return -np.expm1(log_miss)


CADENCE_GRID = np.geomspace(3.0, 120.0, 60)  # days between a staple's due purchases, tried


def estimated_staples(truth: dict[str, np.ndarray], cat: synth_chain.Catalogue, split: Split,
                      data: Transactions, days: int) -> dict[str, np.ndarray]:
    """The hidden parameters with each staple's start and cadence replaced by what the lines
    before the cut say; the rest (which items are staples, the exploration, the generator's
    rules) stays known.

    The start is the member's first purchase of it. The cadence becomes a mixture over a log
    grid (a flat prior): each cadence weighs how likely it makes what the member's trips since
    the start show, each trip holding the item or not. A trip holds it when a kept purchase fell
    due since the trip before (at the cadence's rate, fading as the run of ``STAPLE_RUN``
    purchases comes to its end) or an exploration line picked it. A staple not bought before the
    cut gets no purchases: nothing in the lines says it is one. Only the asked members' staples
    are estimated."""
    train = split.train
    cut = float(split.now.min())  # the time split asks every member at one moment
    n_skus = cat.category.size
    member = data.user_labels[train.user].astype(np.int64)
    key = member * n_skus + data.item_labels[train.item].astype(np.int64)
    order = np.lexsort((train.time, key))
    key, when = key[order], train.time[order].astype(np.float64)
    _, first_line = np.unique(train.basket, return_index=True)  # trips: one line each
    trip_member, trip_time = member[first_line], train.time[first_line].astype(np.float64)
    by_trip = np.lexsort((trip_time, trip_member))
    trip_member, trip_time = trip_member[by_trip], trip_time[by_trip]
    lam = KEEP / CADENCE_GRID[:, None]  # kept purchases a day
    run = synth_chain.STAPLE_RUN * CADENCE_GRID[:, None]  # days until the last purchase is due
    day = (cut - synth_chain.START) / DAY
    out = dict(truth)
    first = np.zeros(truth["staple_member"].size)
    grid = CADENCE_GRID * DAY
    weight = np.zeros((first.size, grid.size))
    weight[:, grid.size // 2] = 1.0  # too few trips to tell: the grid's middle
    events = np.zeros((first.size, grid.size), dtype=np.int64)
    asked = data.user_labels[split.test_users].astype(np.int64)  # the others are never scored
    for m in np.intersect1d(truth["staple_member"], asked):
        trips = trip_time[np.searchsorted(trip_member, m):np.searchsorted(trip_member, m, "right")]
        explore = -np.expm1(truth["lines_per_trip"][0] * np.log1p(-explore_per_line(truth, cat, int(m), day, days)))
        for j in np.flatnonzero(truth["staple_member"] == m):
            k = m * n_skus + truth["staple_item"][j]
            bought = when[np.searchsorted(key, k):np.searchsorted(key, k, "right")]
            if not bought.size:
                continue
            first[j] = bought[0]
            later = trips[trips > bought[0]]
            if later.size >= 2:
                gap = np.diff(np.concatenate([[bought[0]], later])) / DAY
                held = np.isin(later, bought)
                mid = (later - gap * DAY / 2.0 - bought[0]) / DAY  # days since the start
                left = ndtr((run - mid[None, :]) / (JITTER * run))
                p = 1.0 - np.exp(-lam * gap * left) * (1.0 - explore[truth["staple_item"][j]])
                loglik = np.where(held, np.log(p + 1e-12), np.log1p(-p + 1e-12)).sum(axis=1)
                w = np.exp(loglik - loglik.max())
                w[w < 1e-3] = 0.0  # a negligible share of the mixture: not worth scoring
                weight[j] = w / w.sum()
            due = (days * DAY - (first[j] - synth_chain.START)) // grid
            events[j] = np.where(weight[j] > 0, np.clip(due + 1, 0, synth_chain.STAPLE_RUN), 0)
    out.update(staple_first=first, staple_cadence=np.broadcast_to(grid, weight.shape), staple_events=events,
               staple_weight=weight)
    return out


def compare(split: Split, data: Transactions, truth: dict[str, np.ndarray], cat: synth_chain.Catalogue,
            days: int) -> tuple[tuple[float, float], tuple[float, float], int]:
    """(NDCG@10, Recall@10) of buy-again and of the oracle on the split's members, and their number."""
    buy_again = BuyAgain()
    buy_again.fit(split.train)
    fill = popularity_tiebreak(basket_counts(split.train))  # buy-again's tie-break, for the oracle's ties
    sku = data.item_labels.astype(np.int64)  # the harness's item index -> SKU
    member = data.user_labels.astype(np.int64)
    again, best = [], []
    for n, user in enumerate(split.test_users):
        target = split.test_items[n]
        cut = float(split.now[n])
        again.append(user_metrics(buy_again.recommend(int(user), 20, None, int(cut)), target))
        p = oracle_scores(truth, cat, int(member[user]), cut, cut + 30 * DAY, days)[sku] + 1e-9 * fill
        best.append(user_metrics(np.argsort(-p, kind="stable")[:20], target))
    a, b = mean_scores(again), mean_scores(best)
    return (a.ndcg10, a.recall10), (b.ndcg10, b.recall10), a.users


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv", help="a file written by bench/synth_chain.py")
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--skus", type=int, default=5_000)
    p.add_argument("--lines", type=int, default=300_000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--staples", type=float, default=4.0)
    p.add_argument("--trip-lines", type=float, default=3.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation", action="store_true", help="the split cut from the training part, as the harness's")
    p.add_argument("--cadence", choices=("known", "estimated"), default="known",
                   help="estimated: each staple's start and cadence from the lines before the cut "
                        "(bench/synth_oracle.estimated_staples), the rest known")
    a = p.parse_args(argv)
    if a.members > 50_000:
        print("error: the oracle keeps every member's parameters; use a chain of at most 50,000 members",
              file=sys.stderr)
        return 2
    shape = synth_chain.ChainShape(members=a.members, skus=a.skus, lines=a.lines, days=a.days,
                                   staples=a.staples, trip_lines=a.trip_lines, seed=a.seed)
    truth = hidden(shape, a.csv)
    cat = synth_chain.make_catalogue(shape, np.random.default_rng(shape.seed))
    columns = ColumnMap(user="member", item="sku", basket="order_id", time="paid_at", qty="qty", price=None,
                        category=None)
    data, _ = load_numeric(a.csv, columns, CleanRules(cancel_prefix=None, exclude_items=None))
    split = time_split(data)
    if a.validation:
        split = time_split(split.train)
    if a.cadence == "estimated":
        truth = estimated_staples(truth, cat, split, data, shape.days)
    (an, ar), (on, orr), users = compare(split, data, truth, cat, shape.days)
    print(f"{split.name}, mode all, {users} members{' (validation)' if a.validation else ''}, "
          f"staples' cadence {a.cadence}")
    print(f"buy-again   NDCG@10 {an:.4f}  R@10 {ar:.4f}")
    print(f"oracle      NDCG@10 {on:.4f}  R@10 {orr:.4f}")
    print(f"oracle / buy-again: NDCG@10 x{on / an:.3f}, R@10 x{orr / ar:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
