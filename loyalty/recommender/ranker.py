"""The learned weighting of the candidate features.

A logistic regression, fit on each training user's last order held out from
their earlier history, decides how much own repeat behaviour, collaborative
signal and popularity count. Optional pairwise products of chosen features
let it learn interactions (a frequent item that is also trending, a re-buyer
whose item is due again) while serving stays one dot product.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def quadratic_pairs(columns: Sequence[int]) -> np.ndarray:
    """Every pair (with itself too) of the given feature columns, as an (n, 2) array."""
    cols = sorted(set(columns))
    pairs = list(itertools.combinations(cols, 2)) + [(c, c) for c in cols]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def expand(x: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The feature rows followed by the products of the given column pairs."""
    if pairs.size == 0:
        return x
    return np.hstack([x, x[:, pairs[:, 0]] * x[:, pairs[:, 1]]])


@dataclass(frozen=True)
class LinearRanker:
    """score = expand(x) @ weights + bias (a logit of "bought in the next order")."""

    weights: np.ndarray
    bias: float
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score per feature row."""
        # einsum, not @: a threaded BLAS call costs milliseconds for this tiny
        # product on a busy machine, einsum tens of microseconds.
        return np.einsum("ij,j->i", expand(x, self.pairs), self.weights) + self.bias


def fit_ranker(x: np.ndarray, y: np.ndarray, pairs: np.ndarray | None = None,
               c: float = 1.0, negatives: float = 1.0, seed: int = 0) -> LinearRanker:
    """Fit on feature rows and 0/1 labels; needs at least one row of each label.

    ``negatives`` < 1 keeps only that share of the 0-labelled rows: it shifts
    the bias but not the ranking, and makes fitting several times faster.
    """
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("ranker needs both bought and not-bought examples")
    if negatives < 1.0:
        keep = y | (np.random.default_rng(seed).random(y.size) < negatives)
        x, y = x[keep], y[keep]
    pairs = np.zeros((0, 2), dtype=np.int64) if pairs is None else np.asarray(pairs, dtype=np.int64)
    z = expand(x, pairs)
    scaler = StandardScaler().fit(z)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    lr = LogisticRegression(C=c, max_iter=3000).fit((z - scaler.mean_) / scale, y)
    # Fold the scaling into the weights so that serving needs no scaler.
    weights = lr.coef_[0] / scale
    return LinearRanker(weights, float(lr.intercept_[0] - (scaler.mean_ * weights).sum()), pairs)
