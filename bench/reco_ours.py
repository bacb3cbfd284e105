"""The loyalty recommender behind the harness's method interface."""

from __future__ import annotations

import numpy as np

from bench.reco_baselines import Fitted
from bench.reco_data import Transactions
from loyalty.recommender.data import Interactions
from loyalty.recommender.model import Config, Recommender


class OursMethod(Fitted):
    """loyalty.recommender.Recommender, fit on the split's training lines."""

    name = "loyalty (ours)"

    def __init__(self, config: Config | None = None) -> None:
        self.config = config

    def fit(self, train: Transactions) -> None:
        data = Interactions(train.user, train.item, train.time.astype(np.float64), train.basket, train.qty)
        self._model = Recommender(self.config).fit(data, train.n_users, train.n_items,
                                                   category=train.item_category)

    def recommend(self, user: int, k: int, exclude: np.ndarray | None, now: int) -> np.ndarray:
        # In "new" mode the harness excludes exactly the user's past items: ask for discovery.
        recs = self._model.recommend(user, k, now=float(now), exclude_bought=exclude is not None,
                                     exclude=exclude)
        return np.array([r.item for r in recs], dtype=np.int64)
