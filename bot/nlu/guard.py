"""Cut over-long texts before any other NLU component sees them.

jieba and DIET cost grows with the text (DIET's attention with its square): a
100 KB message took a Rasa process 33 s and 12 GB. The channels refuse such
texts with a polite answer, but Rasa's own REST channel, ``/model/parse`` and
any channel added later hand texts straight to the pipeline. This component
is therefore the first of the pipeline and keeps only the first
``max_chars`` characters of each text, so the rest of the pipeline always
works on a bounded input. Cutting, not refusing: an NLU component cannot
answer the shopper, and an answer to the start of a message beats a stalled
server.

The limit is ``max_chars`` from config.yml when given, else the
``BOT_MAX_TEXT_CHARS`` setting read when the model is loaded, so one setting
governs the channels and the pipeline without retraining.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.settings import max_text_chars

logger = logging.getLogger(__name__)

# Set on a message whose text was cut: how long it was (kept in parse_data, so the tracker tells).
CUT_FROM = "text_cut_from"


def bounded(text: str, max_chars: int) -> str:
    """``text`` if short enough, else its first ``max_chars`` characters."""
    return text if len(text) <= max_chars else text[:max_chars]


# Registered as a non-trainable entity extractor, like the language detector:
# that places it in the prediction graph as a plain `process` step in
# pipeline order (first here), without touching training data.
@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class TextLengthGuard(GraphComponent):
    """Keeps at most ``max_chars`` characters of each message's text."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """``max_chars``: None means the ``BOT_MAX_TEXT_CHARS`` setting."""
        return {"max_chars": None}

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TextLengthGuard:
        """Create the guard with the configured limit, or the setting's."""
        configured: int | None = config.get("max_chars")
        return cls(int(configured) if configured else max_text_chars())

    def process(self, messages: list[Message]) -> list[Message]:
        """Cut each text longer than the limit (in place); others pass untouched."""
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str) and len(text) > self.max_chars:
                message.set(TEXT, bounded(text, self.max_chars))
                message.set(CUT_FROM, len(text), add_to_output=True)
                # The length only: the text is the shopper's and may hold personal data.
                logger.warning("nlu input cut from %d to %d characters", len(text), self.max_chars)
        return messages
