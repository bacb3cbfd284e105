"""Top-k ranking metrics for held-out baskets (binary relevance)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DISCOUNT = 1.0 / np.log2(np.arange(2, 102))


@dataclass(frozen=True)
class Scores:
    """Mean metrics over the evaluated users."""

    users: int
    hit10: float
    ndcg10: float
    recall10: float
    recall20: float


def user_metrics(ranked: np.ndarray, target: np.ndarray) -> tuple[float, float, float, float]:
    """HitRate@10, NDCG@10, Recall@10, Recall@20 of one ranked list against a target set."""
    if target.size == 0:
        raise ValueError("empty target: the user should have been skipped")
    hits = np.isin(ranked[:20], target)
    h10 = hits[:10]
    ideal = _DISCOUNT[: min(target.size, 10)].sum()
    dcg = _DISCOUNT[: h10.size][h10].sum()
    return (
        float(h10.any()),
        float(dcg / ideal),
        float(h10.sum() / target.size),
        float(hits.sum() / target.size),
    )


def mean_scores(rows: list[tuple[float, float, float, float]]) -> Scores:
    """Average per-user metrics; zeros when no user was evaluated."""
    if not rows:
        return Scores(0, 0.0, 0.0, 0.0, 0.0)
    a = np.asarray(rows, dtype=np.float64).mean(axis=0)
    return Scores(len(rows), float(a[0]), float(a[1]), float(a[2]), float(a[3]))


def ratio_interval(mine: np.ndarray, other: np.ndarray, level: float = 0.95, draws: int = 1000,
                   seed: int = 0) -> np.ndarray:
    """Paired bootstrap interval of mean(mine) / mean(other), column by column.

    ``mine`` and ``other`` hold one row of metrics per evaluated user, the same
    users in the same order; every draw resamples users (with replacement) and
    keeps both methods' rows of each drawn user together, so what the users
    share (an easy or a hard basket) cancels out of the ratio. Returns a
    (2, columns) array: the lower and upper bounds (inf where the other mean is 0).
    """
    mine, other = np.atleast_2d(np.asarray(mine, float).T).T, np.atleast_2d(np.asarray(other, float).T).T
    if mine.shape != other.shape or not mine.shape[0]:
        raise ValueError("need the same users, at least one, for both methods")
    n = mine.shape[0]
    rng = np.random.default_rng(seed)
    ratios = np.empty((draws, mine.shape[1]))
    chunk = max(1, 2_000_000 // n)  # draws at a time: bounded memory for any number of users
    for start in range(0, draws, chunk):
        idx = rng.integers(0, n, (min(chunk, draws - start), n))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = mine[idx].sum(axis=1) / other[idx].sum(axis=1)
        ratios[start:start + idx.shape[0]] = np.where(np.isnan(r), np.inf, r)
    tail = (1.0 - level) / 2.0 * 100.0
    return np.percentile(ratios, [tail, 100.0 - tail], axis=0)
