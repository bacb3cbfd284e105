"""Confidence gates: a costly intent needs a confident model, a close call between two meanings asks.

Rasa's FallbackClassifier has one threshold for every intent. Some intents
cost more when wrong than others: ``human`` and ``complain`` hand the
conversation to a person, ``close_account`` and ``opt_out`` lead to
irreversible acts (after a confirmation), ``exchange_coupon`` and
``claim_coupon`` spend points or stock. This component, placed after the
FallbackClassifier, turns such a prediction into ``nlu_fallback`` when its
confidence is below the intent's own threshold, and does the same when the
two best intents are a pair that shoppers' words often blur ("which coupons
can I get" / "which coupons do I have"; a question about points / a
complaint) and the first leads the second by less than the pair's margin.

The intent ranking is kept (``nlu_fallback`` first, as the FallbackClassifier
does), so ``action_clarify`` can offer the two meanings as buttons; the
reason is kept in the parse data as ``nlu_gate`` for the review list.
Button payloads ("/my_coupons") are set after the pipeline and pass untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)

GATE = "nlu_gate"

# For the probabilities of bot/nlu/linear.py, chosen on cross-validated predictions of the
# training data (not the held-out set): a correct prediction of these intents is rarely below
# 0.6, most wrong ones are.
DEFAULT_THRESHOLDS = {
    # A person's time: 0.6 keeps ~9 in 10 correct handoffs and stops most wrong ones.
    "human": 0.6,
    "complain": 0.6,
    "close_account": 0.5,
    "opt_out": 0.5,
    "exchange_coupon": 0.4,
    "claim_coupon": 0.4,
}
# [first, second, margin]: either order.
DEFAULT_PAIRS: list[list[Any]] = [
    ["list_coupons", "my_coupons", 0.1],
    ["claim_coupon", "my_coupons", 0.1],
    ["ask_points", "complain", 0.25],
    ["points_history", "complain", 0.3],
    # "does my tier come with a dedicated agent?" is a tier question that names a person.
    ["ask_tier", "human", 0.25],
]


def gate_reason(
    ranking: Sequence[Mapping[str, Any]],
    thresholds: Mapping[str, float],
    pairs: Sequence[Sequence[Any]],
) -> str | None:
    """Why a prediction should ask instead of act, or None to let it through."""
    ranked = [r for r in ranking if r.get("name") != DEFAULT_NLU_FALLBACK_INTENT_NAME]
    if not ranked:
        return None
    first = ranked[0]
    name, confidence = str(first.get("name")), float(first.get("confidence") or 0.0)
    if name in thresholds and confidence < float(thresholds[name]):
        return f"{name} below {float(thresholds[name]):.2f}"
    if len(ranked) < 2:
        return None
    second = ranked[1]
    top_two = {name, str(second.get("name"))}
    for a, b, margin in pairs:
        if top_two == {a, b} and confidence - float(second.get("confidence") or 0.0) < float(margin):
            return f"{a}/{b} closer than {float(margin):.2f}"
    return None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class ConfidenceGate(GraphComponent):
    """Per-intent confidence thresholds and per-pair margins on top of the FallbackClassifier."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """``thresholds``: intent -> least confidence; ``pairs``: [intent, intent, least lead]."""
        return {"thresholds": dict(DEFAULT_THRESHOLDS), "pairs": [list(p) for p in DEFAULT_PAIRS]}

    def __init__(self, thresholds: Mapping[str, float], pairs: Sequence[Sequence[Any]]) -> None:
        self.thresholds = dict(thresholds)
        self.pairs = [tuple(p) for p in pairs]

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ConfidenceGate:
        return cls(config.get("thresholds") or {}, config.get("pairs") or [])

    def process(self, messages: list[Message]) -> list[Message]:
        """Turn a gated prediction into nlu_fallback, keeping the ranking for the clarifying question."""
        for message in messages:
            intent = message.get(INTENT) or {}
            if not intent or intent.get("name") == DEFAULT_NLU_FALLBACK_INTENT_NAME:
                continue
            ranking = message.get(INTENT_RANKING_KEY) or [intent]
            reason = gate_reason(ranking, self.thresholds, self.pairs)
            if reason is None:
                continue
            confidence = float(intent.get("confidence") or 0.0)
            message.data[INTENT] = {"name": DEFAULT_NLU_FALLBACK_INTENT_NAME, "confidence": confidence}
            message.data[INTENT_RANKING_KEY] = [
                {"name": DEFAULT_NLU_FALLBACK_INTENT_NAME, "confidence": confidence}, *ranking
            ]
            message.set(GATE, reason, add_to_output=True)
            logger.debug("nlu gate: %s", reason)
        return messages
