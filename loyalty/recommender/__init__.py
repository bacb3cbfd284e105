"""Personalised recommendations: a pure NumPy/SciPy model plus a database-facing service.

``model.Recommender`` knows nothing about the database; ``service`` builds its
training arrays from orders and answers members' requests with reasons.
"""

from loyalty.recommender.data import Interactions
from loyalty.recommender.model import BOUGHT_WITH, POPULAR, REPEAT, Config, Recommender, Scored

__all__ = ["BOUGHT_WITH", "POPULAR", "REPEAT", "Config", "Interactions", "Recommender", "Scored"]
