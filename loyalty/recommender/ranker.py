"""The learned weighting of the candidate features.

:class:`TreeRanker` (boosted trees in flat arrays, with a logistic screen
that shortlists rows and is blended in) is the default, fit pointwise
(:func:`fit_trees`, scikit-learn), listwise (:func:`fit_lambdarank`,
LightGBM's LambdaRank) or both added up (:func:`add_trees`), and served the same way; the logistic
ranker below serves small shops and is the screen. The logistic regression,
fit on held-out orders (see ``Recommender._fit_ranker``), decides how much own repeat behaviour, collaborative
signal and popularity count. Optional pairwise products of chosen features
let it learn interactions (a frequent item that is also trending, a re-buyer
whose item is due again) while serving stays one dot product.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from loyalty.recommender.kernels import tree_scores

log = logging.getLogger(__name__)

NOISE_SPREAD = 1e-6  # a feature column whose standard deviation is below this is noise (features are O(1))


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


def _examples(x: np.ndarray, y: np.ndarray, negatives: float, seed: int,
              weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The rows a ranker is fit on: both labels must be there; ``negatives`` < 1 keeps only that
    share of the 0-labelled rows (it shifts the bias, not the ranking, and fits several times faster).
    Row weights, if given, are kept alongside and scaled to a mean of 1."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("ranker needs both bought and not-bought examples")
    if negatives < 1.0:
        keep = y | (np.random.default_rng(seed).random(y.size) < negatives)
        x, y = x[keep], y[keep]
        weight = weight[keep] if weight is not None else None
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64) / max(float(np.mean(weight)), 1e-12)
    return x, y, weight


def fit_ranker(x: np.ndarray, y: np.ndarray, pairs: np.ndarray | None = None,
               c: float = 1.0, negatives: float = 1.0, seed: int = 0,
               weight: np.ndarray | None = None) -> LinearRanker:
    """Fit on feature rows and 0/1 labels (optionally weighted); needs at least one row of each label.

    ``negatives`` < 1 keeps only that share of the 0-labelled rows: it shifts
    the bias but not the ranking, and makes fitting several times faster.
    """
    x, y, weight = _examples(x, y, negatives, seed, weight)
    pairs = np.zeros((0, 2), dtype=np.int64) if pairs is None else np.asarray(pairs, dtype=np.int64)
    z = expand(x, pairs)
    scaler = StandardScaler().fit(z)
    # A column that only varies by rounding noise (a small shop's latent factors: spread 5e-8)
    # carries no signal; standardised, its noise would earn a weight in the millions, and the
    # ranking would follow the last bits of the machine's arithmetic. It gets weight 0.
    live = scaler.scale_ > NOISE_SPREAD
    scale, mean = scaler.scale_[live], scaler.mean_[live]
    weights = np.zeros(z.shape[1])
    if live.any():
        lr = LogisticRegression(C=c, max_iter=3000).fit((z[:, live] - mean) / scale, y, sample_weight=weight)
        weights[live] = lr.coef_[0] / scale  # the scaling folded in: serving needs no scaler
        bias = float(lr.intercept_[0] - (mean * weights[live]).sum())
    else:
        bias = float(np.log(max(y.mean(), 1e-12) / max(1.0 - y.mean(), 1e-12)))
    return LinearRanker(weights, bias, pairs)


@dataclass(frozen=True)
class TreeRanker:
    """Boosted decision trees held as flat arrays: score = bias + sum of one leaf per tree.

    Every node of every tree lives in the same arrays; a leaf points to itself,
    so ``depth`` steps of "go left if x[feature] <= threshold" bring every
    (row, tree) pair to its leaf (a compiled loop, :func:`kernels.tree_scores`),
    without any model object (and without pickle in the model file).
    """

    feature: np.ndarray  # int32 per node (0 for leaves)
    threshold: np.ndarray  # float64 per node (+inf for leaves)
    left: np.ndarray  # int32 node index, a leaf's own index
    right: np.ndarray  # int32 node index, a leaf's own index
    value: np.ndarray  # float64 per node: the leaf value (0 for inner nodes)
    roots: np.ndarray  # int32 root node of each tree
    depth: int
    bias: float
    # Serving scores only the ``screen_keep`` rows the linear ``screen`` likes best with the
    # trees (their cost grows with rows x trees x depth); None: every row.
    screen: LinearRanker | None = None
    screen_keep: int = 50
    blend: float = 0.0  # weight of the screen's logit added to the trees' on the shortlist
    # Serving copies in NumPy's index type (int32 indices are converted on every gather): each
    # node's children side by side, right then left, so that 2 * node + (x <= threshold) picks one.
    _children: np.ndarray = field(init=False, repr=False, compare=False)
    _feature: np.ndarray = field(init=False, repr=False, compare=False)
    _roots: np.ndarray = field(init=False, repr=False, compare=False)
    _threshold: np.ndarray = field(init=False, repr=False, compare=False)
    _value: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children = np.empty(2 * self.left.size, dtype=np.intp)
        children[0::2], children[1::2] = self.right, self.left
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "_feature", self.feature.astype(np.intp))
        object.__setattr__(self, "_roots", self.roots.astype(np.intp))
        # One type per argument: the compiled walk is compiled once, whatever the model file held.
        object.__setattr__(self, "_threshold", np.ascontiguousarray(self.threshold, dtype=np.float64))
        object.__setattr__(self, "_value", np.ascontiguousarray(self.value, dtype=np.float64))

    def shortlist(self, x: np.ndarray, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the kept rows worth ranking for a top-k list, and those rows' mask.

        Rows outside the shortlist get -inf; the shortlist holds the screen's
        best max(screen_keep, 2k) kept rows.
        """
        idx = np.flatnonzero(keep)
        n = max(self.screen_keep, 2 * k)
        first = np.zeros(idx.size)
        if self.screen is not None and (idx.size > n or self.blend):
            first = self.screen.score(x[idx])
            if idx.size > n:
                top = np.argpartition(-first, n - 1)[:n]
                idx, first = idx[top], first[top]
        scores = np.full(x.shape[0], -np.inf)
        scores[idx] = self.score(x[idx]) + self.blend * first
        chosen = np.zeros(x.shape[0], dtype=bool)
        chosen[idx] = True
        return scores, chosen

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score per feature row (a logit of "bought")."""
        if x.shape[0] == 0 or self.roots.size == 0:
            return np.full(x.shape[0], self.bias)
        return tree_scores(np.ascontiguousarray(x, dtype=np.float64), self._roots, self._feature,
                           self._threshold, self._children, self._value, self.depth, float(self.bias))


def fit_trees(x: np.ndarray, y: np.ndarray, *, iterations: int = 100, leaves: int = 31,
              max_depth: int = 6, learning_rate: float = 0.1, min_leaf: int = 200,
              negatives: float = 1.0, screen_keep: int = 50, blend: float = 0.0,
              threads: int = 1, seed: int = 0, weight: np.ndarray | None = None) -> TreeRanker:
    """Gradient-boosted trees (sklearn's histogram boosting, log loss), exported to arrays.

    With ``screen_keep`` > 0 a logistic screen is fit on the same rows (see
    :meth:`TreeRanker.shortlist`).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x, y, weight = _examples(x, y, negatives, seed, weight)
    # One OpenMP thread: with two, a fit on a busy machine spent most of its time with one
    # thread waiting for the other (10k-member chain: 330 s against 92 s when quieter).
    with threadpool_limits(threads, "openmp"):
        model = HistGradientBoostingClassifier(
            max_iter=iterations, max_leaf_nodes=leaves, max_depth=max_depth,
            learning_rate=learning_rate, min_samples_leaf=min_leaf, early_stopping=False,
            random_state=seed,
        ).fit(x, y, sample_weight=weight)
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    offset, depth = 0, 0
    for (predictor,) in model._predictors:  # one tree per iteration for two classes
        nodes = predictor.nodes
        own = np.arange(nodes.size, dtype=np.int64) + offset
        leaf = nodes["is_leaf"].astype(bool)
        feature.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int32))
        threshold.append(np.where(leaf, np.inf, nodes["num_threshold"]))
        left.append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset).astype(np.int32))
        right.append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset).astype(np.int32))
        value.append(np.where(leaf, nodes["value"], 0.0))
        roots.append(offset)
        depth = max(depth, int(nodes["depth"].max()))
        offset += nodes.size
    screen = fit_ranker(x, y, weight=weight) if screen_keep > 0 or blend else None
    return TreeRanker(
        np.concatenate(feature), np.concatenate(threshold), np.concatenate(left),
        np.concatenate(right), np.concatenate(value), np.asarray(roots, dtype=np.int32),
        depth, float(np.ravel(model._baseline_prediction)[0]), screen, screen_keep, blend,
    )


def add_trees(a: TreeRanker, b: TreeRanker, weight: float) -> TreeRanker:
    """One ranker scoring a's trees plus ``weight`` x b's, with a's screen and blend: two fits of
    the same examples served as one (each tree keeps its nodes, renumbered after a's)."""
    off = a.feature.size
    return TreeRanker(
        np.concatenate([a.feature, b.feature]), np.concatenate([a.threshold, b.threshold]),
        np.concatenate([a.left, b.left + off]).astype(np.int32),
        np.concatenate([a.right, b.right + off]).astype(np.int32),
        np.concatenate([a.value, weight * b.value]),
        np.concatenate([a.roots, b.roots + off]).astype(np.int32),
        max(a.depth, b.depth), a.bias + weight * b.bias, a.screen, a.screen_keep, a.blend,
    )


@functools.lru_cache(maxsize=1)
def listwise_available() -> bool:
    """Whether LightGBM loads (it needs the system's OpenMP library, Debian's libgomp1); without it
    the rankers are fit pointwise only, with a warning."""
    try:
        import lightgbm  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: lib_lightgbm.so without libgomp.so.1
        log.warning("LightGBM unavailable (%s): the rankers are fit pointwise only", exc)
        return False
    return True


def fit_lambdarank(x: np.ndarray, y: np.ndarray, query: np.ndarray, *, iterations: int = 100,
                   leaves: int = 31, max_depth: int = 6, learning_rate: float = 0.1, min_leaf: int = 200,
                   negatives: float = 1.0, screen_keep: int = 50, blend: float = 0.0, threads: int = 1,
                   seed: int = 0, truncation: int = 20) -> TreeRanker:
    """Boosted trees fit to rank each request's bought items first (LightGBM's LambdaRank on
    NDCG, its top ``truncation`` rows), exported to the same flat arrays as :func:`fit_trees`.

    ``query`` numbers the request of each row (a request's rows contiguous); requests without a
    bought item teach nothing and are dropped. Each request counts as one list, so no row weights.
    With ``negatives`` < 1 only that share of the not-bought rows is kept, as for the other rankers.
    """
    import lightgbm as lgb

    y = np.asarray(y, dtype=bool)
    keep = np.ones(y.size, dtype=bool)
    if negatives < 1.0:
        keep = y | (np.random.default_rng(seed).random(y.size) < negatives)
    useful = np.zeros(int(query.max()) + 1 if query.size else 0, dtype=bool)
    useful[query[y]] = True
    keep &= useful[query]
    x, y, query = x[keep], y[keep], query[keep]
    if y.all() or not y.any():
        raise ValueError("ranker needs requests with both bought and not-bought rows")
    starts = np.flatnonzero(np.concatenate(([True], query[1:] != query[:-1])))
    sizes = np.diff(np.append(starts, query.size))
    params = {"objective": "lambdarank", "num_leaves": leaves, "max_depth": max_depth,
              "learning_rate": learning_rate, "min_data_in_leaf": min_leaf, "num_threads": threads,
              "seed": seed, "deterministic": True, "verbose": -1,
              "lambdarank_truncation_level": truncation}
    booster = lgb.train(params, lgb.Dataset(x, label=y.astype(np.int32), group=sizes),
                        num_boost_round=iterations)
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    roots: list[int] = []
    depth = 0

    def add(node: dict, level: int) -> int:
        nonlocal depth
        me = len(feature)
        feature.append(0)
        threshold.append(np.inf)
        left.append(me)
        right.append(me)
        value.append(0.0)
        if "leaf_value" in node or "leaf_index" in node:
            value[me] = float(node.get("leaf_value", 0.0))
            depth = max(depth, level)
            return me
        if node.get("decision_type", "<=") != "<=":
            raise ValueError(f"unsupported split {node.get('decision_type')!r}")
        feature[me] = int(node["split_feature"])
        threshold[me] = float(node["threshold"])
        left[me] = add(node["left_child"], level + 1)
        right[me] = add(node["right_child"], level + 1)
        return me

    for tree in booster.dump_model()["tree_info"]:
        roots.append(add(tree["tree_structure"], 0))
    screen = fit_ranker(x, y) if screen_keep > 0 or blend else None
    return TreeRanker(
        np.asarray(feature, dtype=np.int32), np.asarray(threshold, dtype=np.float64),
        np.asarray(left, dtype=np.int32), np.asarray(right, dtype=np.int32),
        np.asarray(value, dtype=np.float64), np.asarray(roots, dtype=np.int32), max(depth, 1), 0.0,
        screen, screen_keep, blend,
    )
