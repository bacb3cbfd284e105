"""A synthetic retail chain's order lines, written as a transactions CSV for the harness.

Run by hand. The full size of issue 16 (a million members, 50,000 SKUs, about
30 million lines) streams out in chunks of members, so memory stays bounded:

    nice .venv/bin/python bench/synth_chain.py /tmp/chain-1m.csv --members 1000000 \\
        --skus 50000 --lines 30000000

The structure is what a recommender has to find in a real chain:

- a long-tail catalogue: categories of very different sizes, Zipf popularity
  inside each category;
- category affinities: every member shops mostly in a few favourite categories;
- repeat cadences: every member has a few staples bought again every 1-8 weeks
  (with jitter), joined to their next shopping trip;
- seasonality: more trips in December and at weekends, and seasonal categories
  that peak in one month;
- new items: a fifth of the catalogue is launched during the year and is only
  sold after its launch day;
- uneven activity: trips per member are log-normal, so some members have long
  histories and many have two or three orders.

Columns: ``member,sku,order_id,paid_at,qty,category`` (paid_at in Unix seconds,
category the SKU's category as a retailer's catalogue has it), all integers,
which the harness reads with its fast numeric path:

    .venv/bin/python bench/eval_recommender.py /tmp/chain-1m.csv --synthetic
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

DAY = 86_400
START = 1_704_067_200  # 2024-01-01T00:00:00Z
HEADER = "member,sku,order_id,paid_at,qty,category\n"
# Knobs of generate_chunk that bench/synth_oracle.py reads back.
STAPLE_KEEP = 0.8  # share of staple purchases made in the chain (the rest bought elsewhere)
STAPLE_JITTER = 0.15  # spread of the k-th staple purchase's time, relative to k cadences
STAPLE_RUN = 60  # purchases due per staple at most: then the member gives it up
FROM_FAVOURITE = 0.8  # share of exploration lines from one of the member's favourite categories


@dataclass(frozen=True)
class ChainShape:
    """Sizes and the knobs of the structure (defaults: a mid-sized grocery/beauty chain)."""

    members: int = 10_000
    skus: int = 5_000
    lines: int = 300_000
    days: int = 365
    categories: int = 0  # 0: about one per 250 SKUs
    staples: float = 4.0  # mean staples per member
    trip_lines: float = 3.5  # mean distinct lines per shopping trip
    new_item_share: float = 0.2
    seed: int = 0

    @property
    def n_categories(self) -> int:
        return self.categories or max(4, self.skus // 250)


@dataclass
class Catalogue:
    category: np.ndarray  # per SKU
    launch_day: np.ndarray  # per SKU, 0 for the opening range
    cat_start: np.ndarray  # SKUs are grouped by category: [cat_start[c], cat_start[c+1])
    cat_cdf: list[np.ndarray]  # Zipf popularity CDF inside each category
    cat_weight: np.ndarray  # overall share of each category
    peak_day: np.ndarray  # per category; seasonal amplitude below
    season_amp: np.ndarray


def make_catalogue(shape: ChainShape, rng: np.random.Generator) -> Catalogue:
    n_cat = shape.n_categories
    sizes = rng.lognormal(0.0, 0.9, n_cat)  # a few big categories, many small ones
    sizes = np.maximum(1, np.round(sizes / sizes.sum() * shape.skus)).astype(np.int64)
    while sizes.sum() > shape.skus:
        sizes[np.argmax(sizes)] -= sizes.sum() - shape.skus
    sizes[-1] += shape.skus - sizes.sum()
    sizes = np.maximum(sizes, 1)
    cat_start = np.concatenate([[0], np.cumsum(sizes)])[: n_cat + 1]
    cat_start[-1] = shape.skus
    category = np.repeat(np.arange(n_cat), np.diff(cat_start))
    cdfs = []
    for c in range(n_cat):
        n = int(cat_start[c + 1] - cat_start[c])
        w = 1.0 / np.arange(1, n + 1) ** 1.05
        cdfs.append(np.cumsum(w) / w.sum())
    launch = np.where(rng.random(shape.skus) < shape.new_item_share,
                      rng.integers(30, shape.days - 20, shape.skus), 0)
    cat_weight = rng.pareto(1.0, n_cat) + 1.0
    seasonal = rng.random(n_cat) < 0.25
    return Catalogue(
        category=category, launch_day=launch, cat_start=cat_start, cat_cdf=cdfs,
        cat_weight=cat_weight / cat_weight.sum(),
        peak_day=rng.integers(0, shape.days, n_cat),
        season_amp=np.where(seasonal, rng.uniform(0.6, 0.95, n_cat), 0.0),
    )


def _trip_day_cdf(days: int) -> np.ndarray:
    """More trips at weekends and in December."""
    d = np.arange(days)
    w = 1.0 + 0.35 * (d % 7 >= 5) + 0.8 * np.exp(-0.5 * ((d - (days - 20)) / 12.0) ** 2)
    return np.cumsum(w) / w.sum()


def _pick_in_category(cat: Catalogue, cats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A popularity-weighted SKU of each given category."""
    out = np.empty(cats.size, dtype=np.int64)
    order = np.argsort(cats, kind="stable")
    sc = cats[order]
    bounds = np.searchsorted(sc, np.arange(cat.cat_weight.size + 1))
    u = rng.random(cats.size)
    for c in np.flatnonzero(np.diff(bounds)):
        sel = order[bounds[c]: bounds[c + 1]]
        out[sel] = cat.cat_start[c] + np.searchsorted(cat.cat_cdf[c], u[sel])
    return np.minimum(out, cat.cat_start[cats + 1] - 1)


def generate_chunk(shape: ChainShape, cat: Catalogue, first_member: int, n_members: int,
                   first_order: int, rng: np.random.Generator, boost: float = 1.35,
                   truth: dict[str, np.ndarray] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Lines (member, sku, order id, Unix time) of ``n_members`` members, and their trip count.

    ``boost`` over-asks exploration lines to make up for those merged as
    duplicates or dropped before their item's launch (the writer adapts it).
    ``truth``, if given, receives the hidden parameters behind the lines (see
    bench/synth_oracle.py); the lines are the same either way.
    """
    days = shape.days
    per_member_lines = shape.lines / shape.members
    lines_per_trip = shape.trip_lines
    # Trips per member: log-normal (many light shoppers, a few with long histories), >= 1.
    mean_trips = max(per_member_lines / lines_per_trip, 1.0)
    trips = np.maximum(1, np.round(rng.lognormal(np.log(mean_trips) - 0.5, 1.0, n_members))).astype(np.int64)
    trips = np.minimum(trips, days)
    join = np.where(rng.random(n_members) < 0.7, 0, rng.integers(0, days - 30, n_members))
    cdf = _trip_day_cdf(days)
    member = np.repeat(np.arange(n_members), trips)
    lo = np.where(join > 0, cdf[np.maximum(join - 1, 0)], 0.0)[member]  # no trip before joining
    u = lo + rng.random(member.size) * (1.0 - lo)
    t = np.searchsorted(cdf, u).astype(np.float64) * DAY + rng.integers(8 * 3600, 21 * 3600, member.size)
    order = np.lexsort((t, member))
    member, t = member[order], t[order]
    trip_id = np.arange(member.size)
    trip_key = member.astype(np.float64) * (days + 2) * DAY + t

    # Favourite categories: 2-6 per member, drawn by category share.
    n_fav = rng.integers(2, 7, n_members)
    fav_member = np.repeat(np.arange(n_members), n_fav)
    fav_cat = rng.choice(cat.cat_weight.size, fav_member.size, p=cat.cat_weight)
    fav_start = np.concatenate([[0], np.cumsum(n_fav)])

    # Staples with cadences, snapped to the member's next trip.
    # Members who shop rarely have fewer staples: a cadence needs trips to show.
    n_st = rng.poisson(shape.staples * np.minimum(1.0, trips / 12.0))
    st_member = np.repeat(np.arange(n_members), n_st)
    pick = fav_start[st_member] + rng.integers(0, n_fav[st_member])
    st_item = _pick_in_category(cat, fav_cat[pick], rng)
    cadence = rng.choice([7, 10, 14, 21, 28, 42, 56], st_member.size).astype(np.float64) * DAY
    span_lo = (join[st_member] * DAY).astype(np.float64)
    span_lo = np.maximum(span_lo, cat.launch_day[st_item] * DAY)
    first = span_lo + rng.random(st_member.size) * cadence
    n_ev = np.clip(((days * DAY - first) // cadence).astype(np.int64) + 1, 0, STAPLE_RUN)
    ev_pair = np.repeat(np.arange(st_member.size), n_ev)
    k = np.arange(ev_pair.size) - np.repeat(np.cumsum(n_ev) - n_ev, n_ev)
    ev_t = first[ev_pair] + k * cadence[ev_pair] * rng.normal(1.0, STAPLE_JITTER, ev_pair.size)
    keep = (ev_t < days * DAY) & (rng.random(ev_pair.size) < STAPLE_KEEP)  # sometimes bought elsewhere
    ev_pair, ev_t = ev_pair[keep], ev_t[keep]
    ev_key = st_member[ev_pair].astype(np.float64) * (days + 2) * DAY + ev_t
    pos = np.searchsorted(trip_key, ev_key)
    ok = (pos < trip_key.size)
    ok[ok] &= member[pos[ok]] == st_member[ev_pair[ok]]
    s_trip = pos[ok]
    s_item = st_item[ev_pair[ok]]

    # Exploration lines: favourite category mostly, seasonal categories in season, new items welcome.
    budget = max(int(n_members * per_member_lines * boost) - s_trip.size, member.size // 2)
    weight = np.ones(member.size)
    per_trip = rng.multinomial(budget, weight / weight.sum()) if member.size else np.zeros(0, np.int64)
    x_trip = np.repeat(trip_id, per_trip)
    xm = member[x_trip]
    from_fav = rng.random(x_trip.size) < FROM_FAVOURITE
    fav_pick = fav_start[xm] + rng.integers(0, n_fav[xm])
    x_cat = np.where(from_fav, fav_cat[fav_pick], rng.choice(cat.cat_weight.size, x_trip.size, p=cat.cat_weight))
    day = t[x_trip] / DAY
    season = 1.0 + cat.season_amp[x_cat] * np.cos(2 * np.pi * (day - cat.peak_day[x_cat]) / days)
    off_season = rng.random(x_trip.size) * 2.0 > season
    x_cat[off_season] = fav_cat[fav_start[xm[off_season]]]  # fall back to the first favourite
    x_item = _pick_in_category(cat, x_cat, rng)
    # Not yet launched: try the category's newest launched items instead of dropping the line.
    late = cat.launch_day[x_item] * DAY > t[x_trip]
    x_item[late] = _pick_in_category(cat, x_cat[late], rng)
    launched = cat.launch_day[x_item] * DAY <= t[x_trip]
    x_trip, x_item = x_trip[launched], x_item[launched]

    if truth is not None:
        truth.update(
            staple_member=st_member + first_member, staple_item=st_item, staple_cadence=cadence,
            staple_first=START + first, staple_events=n_ev, fav_member=fav_member + first_member,
            fav_cat=fav_cat, trip_member=member + first_member, trip_time=START + t,
            lines_per_trip=np.array([budget / max(member.size, 1)]),
        )
    lt = np.concatenate([s_trip, x_trip])
    li = np.concatenate([s_item, x_item])
    key = np.unique(lt.astype(np.int64) * shape.skus + li)
    lt, li = key // shape.skus, key % shape.skus
    return (member[lt] + first_member, li, lt + first_order, (START + t[lt]).astype(np.int64),
            int(member.size))


def chunks(shape: ChainShape, chunk: int = 20_000, truth: list[dict[str, np.ndarray]] | None = None,
           ) -> Iterator[np.ndarray]:
    """The chain's lines, ``chunk`` members at a time: rows of member, sku, order id, Unix time,
    quantity and category. With ``truth`` each chunk's hidden parameters are appended to it."""
    rng = np.random.default_rng(shape.seed)
    cat = make_catalogue(shape, rng)
    next_order = 0
    # Calibrate on a throw-away sample of members, then keep steering chunk by chunk.
    probe = min(shape.members, 5_000)
    m = generate_chunk(shape, cat, 0, probe, 0, np.random.default_rng(shape.seed + 1))[0]
    boost = float(np.clip(1.35 * shape.lines / shape.members * probe / max(m.size, 1), 1.0, 4.0))
    for first in range(0, shape.members, chunk):
        n = min(chunk, shape.members - first)
        hidden: dict[str, np.ndarray] | None = {} if truth is not None else None
        m, i, o, t, n_trips = generate_chunk(shape, cat, first, n, next_order, rng, boost, hidden)
        if truth is not None and hidden is not None:
            truth.append(hidden)
        next_order += n_trips
        # Steer the next chunk towards the target number of lines.
        boost = float(np.clip(boost * (shape.lines / shape.members * n) / max(m.size, 1), 1.0, 4.0))
        qty = 1 + rng.poisson(0.3, m.size)
        yield np.column_stack([m, i, o, t, qty, cat.category[i]])


def write(path: str, shape: ChainShape, chunk: int = 20_000,
          log: Callable[[str], None] = print) -> int:
    """Stream the chain to ``path``; returns the number of lines written."""
    total = 0
    tmp = path + ".part"
    t0 = time.perf_counter()
    with open(tmp, "w", encoding="ascii") as out:
        out.write(HEADER)
        for n, block in enumerate(chunks(shape, chunk)):
            np.savetxt(out, block, fmt="%d", delimiter=",")
            total += block.shape[0]
            members = min(shape.members, (n + 1) * chunk)
            log(f"members {members:>9,}/{shape.members:,}  lines {total:>11,}  "
                f"{time.perf_counter() - t0:.0f}s")
    os.replace(tmp, path)
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="CSV file to write")
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--skus", type=int, default=5_000)
    p.add_argument("--lines", type=int, default=300_000, help="target number of order lines")
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--staples", type=float, default=4.0, help="mean staples (re-bought items) per member")
    p.add_argument("--trip-lines", type=float, default=3.5, help="mean lines per shopping trip")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if (a.members < 1 or a.skus < 10 or a.lines < a.members or a.days < 60 or a.staples < 0
            or a.trip_lines < 1):
        print("error: need members >= 1, skus >= 10, lines >= members, days >= 60, staples >= 0, "
              "trip lines >= 1", file=sys.stderr)
        return 2
    shape = ChainShape(members=a.members, skus=a.skus, lines=a.lines, days=a.days, staples=a.staples,
                       trip_lines=a.trip_lines, seed=a.seed)
    n = write(a.out, shape, log=lambda msg: print(msg, file=sys.stderr))
    print(f"wrote {n} lines for {a.members} members and {a.skus} SKUs to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
