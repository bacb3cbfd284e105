"""Jieba tokenizer for mixed Chinese/English text.

jieba returns the spaces between English words (and around Latin words inside
Chinese text, "我的 points 还有多少") as tokens of their own. They carry no
meaning, dilute the count vectors and break entity spans, so they are dropped.
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.training_data.message import Message


def drop_blank(tokens: list[Token]) -> list[Token]:
    """The tokens that are not pure whitespace (all of them if none is left)."""
    kept = [t for t in tokens if t.text.strip()]
    # An empty token list upsets later featurizers; a blank message keeps its tokens.
    return kept or tokens


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True
)
class MixedJiebaTokenizer(JiebaTokenizer):
    """``JiebaTokenizer`` without whitespace tokens."""

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Tokenize with jieba, then drop the whitespace tokens jieba emits."""
        return drop_blank(super().tokenize(message, attribute))
