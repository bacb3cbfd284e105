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
