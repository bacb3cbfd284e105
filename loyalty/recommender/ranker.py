"""The learned weighting of the candidate features.

A logistic regression, fit on each training user's last order held out from
their earlier history, decides how much own repeat behaviour, collaborative
signal and popularity count. It is folded into one weight vector so that
serving is a single dot product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class LinearRanker:
    """score = x @ weights + bias (a logit of "bought in the next order")."""

    weights: np.ndarray
    bias: float

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score per feature row."""
        return x @ self.weights + self.bias


def fit_ranker(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> LinearRanker:
    """Fit on feature rows and 0/1 labels; needs at least one row of each label."""
    if y.min() == y.max():
        raise ValueError("ranker needs both bought and not-bought examples")
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    lr = LogisticRegression(C=c, max_iter=2000).fit((x - scaler.mean_) / scale, y)
    weights = lr.coef_[0] / scale
    return LinearRanker(weights, float(lr.intercept_[0] - (scaler.mean_ * weights).sum()))
