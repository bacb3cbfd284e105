"""Tell Chinese from English on every message, as an entity ``language``.

The assistant answers in the shopper's language: a ``language`` slot is
filled from this entity and conditional response variations pick the text.
The rule is deliberately simple and explainable:

* Han characters against English words. Chinese packs a word into one or two
  characters, so a message with at least as many Han characters as English
  words reads as Chinese ("我的points还有多少" -> zh, "how many 积分 do I have" -> en).
* No Han at all: English, unless every word is one that Chinese shoppers type
  too ("ok", "hi", "vip", "skip") or no word at all (no vowel: a keyboard
  mash such as "zxcvb", "hmm"); such replies, digits, codes and emoji say
  nothing, and the component abstains so the slot keeps the earlier value.
"""

from __future__ import annotations

import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

ENTITY = "language"

# CJK unified ideographs, extension A and compatibility ideographs (繁體 included).
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Words made of Latin letters only: codes such as SH001 or WELCOME20 are not words.
_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]+(?:'[A-Za-z]+)?(?![A-Za-z0-9])")

_VOWEL = re.compile(r"[aeiouy]")

# Words shoppers of either language type; alone they do not reveal a language.
NEUTRAL_WORDS = frozenset(
    """
    ok okay okk k kk yes no yep hi hey hello bye byebye hh hhh haha hahaha lol
    vip app wifi ps pos qr id ip tv ios apple iphone wechat skip pass thx
    """.split()
)


def detect(text: str) -> str | None:
    """``"zh"``, ``"en"`` or ``None`` when the text does not tell."""
    if not text:
        return None
    han = len(_HAN.findall(text))
    words = [w.lower() for w in _WORD.findall(text)]
    if han:
        return "zh" if han >= len(words) else "en"
    if any(w not in NEUTRAL_WORDS and _VOWEL.search(w) for w in words):
        return "en"
    return None


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False
)
class LanguageDetector(GraphComponent, EntityExtractorMixin):
    """Adds a ``language`` entity ("zh" or "en") to each message that tells."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """No options: the rule is fixed (see the module docstring)."""
        return {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetector:
        """Create the component; it has no state to train or load."""
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        """Append the language entity to each message whose text tells."""
        for message in messages:
            text = message.get(TEXT) or ""
            language = detect(text)
            if language is None:
                continue
            entity = {
                "entity": ENTITY,
                "value": language,
                "start": 0,
                "end": len(text),
                "confidence": 1.0,
            }
            entities = message.get(ENTITIES, []) + self.add_extractor_name([entity])
            message.set(ENTITIES, entities, add_to_output=True)
        return messages
