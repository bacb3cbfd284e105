"""Run several recommenders over the same splits and modes and tabulate the results."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from bench.reco_baselines import Method
from bench.reco_data import Split
from bench.reco_metrics import Scores, mean_scores, ratio_interval, user_metrics

MODES = ("all", "new")
DEPTH = 20  # longest list any metric reads


@dataclass(frozen=True)
class Row:
    """One method on one split in one mode."""

    split: str
    mode: str
    method: str
    scores: Scores
    train_s: float
    p50_ms: float
    p95_ms: float
    repeat10: float = 0.0  # hits@10 per user on items the user had bought before
    explore10: float = 0.0  # hits@10 per user on items new to the user
    # HR@10, NDCG@10, R@10, R@20 of each evaluated user (rows in the order of ``users``).
    per_user: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)), compare=False)
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False)


def _user_items(split: Split) -> sp.csr_matrix:
    t = split.train
    m = sp.csr_matrix((np.ones(t.user.size), (t.user, t.item)), shape=(t.n_users, t.n_items))
    m.sum_duplicates()
    return m


def evaluate(
    methods: Sequence[Method],
    splits: Iterable[Split],
    modes: Sequence[str] = MODES,
    limit_users: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """Fit every method on every split and score it in every mode.

    Splits are taken one at a time and each method's fit is released once it is scored, so
    memory holds one split and one fit at a time.

    In "new" mode the target keeps only items the user never bought in the
    training part, and those bought items are excluded from the list; users
    left with an empty target are skipped.
    """
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    rows: list[Row] = []
    for split in splits:
        seen = _user_items(split)
        picked = np.arange(split.test_users.size)
        if limit_users is not None and limit_users < picked.size:
            picked = np.sort(np.random.default_rng(seed).choice(picked, limit_users, replace=False))
        for method in methods:
            log(f"{split.name}: fitting {method.name}")
            t0 = time.perf_counter()
            method.fit(split.train)
            train_s = time.perf_counter() - t0
            for mode in modes:
                per_user: list[tuple[float, float, float, float]] = []
                evaluated: list[int] = []
                latencies: list[float] = []
                repeat_hits = explore_hits = 0
                for n in picked:
                    user = int(split.test_users[n])
                    own = seen.indices[seen.indptr[user] : seen.indptr[user + 1]]
                    target = split.test_items[n]
                    exclude = None
                    if mode == "new":
                        target = np.setdiff1d(target, own)
                        exclude = np.sort(own)
                        if target.size == 0:
                            continue
                    t1 = time.perf_counter()
                    ranked = method.recommend(user, DEPTH, exclude, int(split.now[n]))
                    latencies.append(time.perf_counter() - t1)
                    ranked = np.asarray(ranked)
                    per_user.append(user_metrics(ranked, target))
                    evaluated.append(user)
                    hit = ranked[:10][np.isin(ranked[:10], target)]
                    again = int(np.isin(hit, own).sum())
                    repeat_hits += again
                    explore_hits += hit.size - again
                lat = np.asarray(latencies) * 1000.0 if latencies else np.zeros(1)
                rows.append(
                    Row(split.name, mode, method.name, mean_scores(per_user), train_s,
                        float(np.percentile(lat, 50)), float(np.percentile(lat, 95)),
                        repeat_hits / max(len(per_user), 1), explore_hits / max(len(per_user), 1),
                        np.asarray(per_user, dtype=np.float64).reshape(-1, 4), np.asarray(evaluated, dtype=np.int64))
                )
            method.release()
    return rows


def format_table(rows: Sequence[Row], ours: str | None = None) -> str:
    """A plain-text table; with ``ours`` named, a ratio line against the best other method.

    rep@10 / exp@10: hits in the top 10 per evaluated user on items the user
    had bought before (repeat) and on items new to them (explore). Each ratio
    comes with its 95% paired bootstrap interval over the evaluated users
    (:func:`reco_metrics.ratio_interval`): how far another sample of the same
    shoppers could move it.
    """
    head = (
        f"{'method':<18} {'users':>6} {'HR@10':>7} {'NDCG@10':>8} {'R@10':>7} {'R@20':>7}"
        f" {'rep@10':>7} {'exp@10':>7} {'train s':>8} {'p50 ms':>7} {'p95 ms':>7}"
    )
    out: list[str] = []
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.split, r.mode), []).append(r)
    for (split, mode), group in groups.items():
        out.append(f"== {split} | mode: {mode} ==")
        out.append(head)
        for r in group:
            s = r.scores
            out.append(
                f"{r.method:<18} {s.users:>6} {s.hit10:>7.4f} {s.ndcg10:>8.4f} {s.recall10:>7.4f}"
                f" {s.recall20:>7.4f} {r.repeat10:>7.3f} {r.explore10:>7.3f}"
                f" {r.train_s:>8.2f} {r.p50_ms:>7.3f} {r.p95_ms:>7.3f}"
            )
        mine = [r for r in group if r.method == ours]
        others = [r for r in group if r.method != ours]
        if mine and others:
            out.append(_ratio_line(mine[0], others))
        out.append("")
    return "\n".join(out)


def _ratio_line(mine: Row, others: Sequence[Row]) -> str:
    parts = []
    for col, (label, attr) in enumerate((("HR@10", "hit10"), ("NDCG@10", "ndcg10"), ("R@10", "recall10"),
                                         ("R@20", "recall20"))):
        best = max(others, key=lambda r: getattr(r.scores, attr))
        value = getattr(best.scores, attr)
        ratio = getattr(mine.scores, attr) / value if value > 0 else float("inf")
        spread = ""
        if mine.users.size and np.array_equal(mine.users, best.users):
            low, high = ratio_interval(mine.per_user[:, col], best.per_user[:, col])[:, 0]
            spread = f" [{low:.3f}-{high:.3f}]"
        parts.append(f"{label} x{ratio:.3f}{spread} (vs {best.method})")
    return f"{mine.method} / best other, 95% interval: " + ", ".join(parts)
