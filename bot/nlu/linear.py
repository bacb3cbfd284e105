"""Intent classification by a linear model on character n-grams and a sentence encoder's vector.

Why not DIET for intents: on shopper messages written apart from the
training data (tests/nlu_eval, bench/nlu_eval.py) DIET, with the same
features, got about 88 % of messages right, while a logistic regression on
TF-IDF character n-grams (1-4, within words) plus the multilingual-e5 sentence
vector of bot/nlu/encoder.py got about 96 %: with ~40-60 examples per intent
and language, the transformer learns the training sentences by heart, the
linear model generalises. DIET still extracts the entities.

The n-grams are of the message's canonical text when bot/nlu/normalise.py gave it
one (chat slang written out), else of its text.

The fitted model is stored as plain arrays (vocabulary, IDF weights,
coefficients): no pickle in the model archive.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.utils.extmath import safe_sparse_dot, softmax

from bot.nlu.normalise import intent_text

logger = logging.getLogger(__name__)

ARRAYS = "linear_intents.npz"
VOCABULARY = "vocabulary.json"


def prepare(text: str) -> str:
    """NFKC (full-width letters and digits become plain) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def probabilities_of(model: LogisticRegression, features: Any) -> np.ndarray:
    """``model.predict_proba(features)``, without checking the features again for every message.

    scikit-learn validates its input on each call (fitted model, array type, feature count):
    most of the classifier's time for one short message. The features come from this
    component, so for a multinomial model this computes what ``predict_proba`` computes, with
    its own functions in its order (the same numbers); any other model goes through it.
    """
    ovr = model.multi_class in ("ovr", "warn") or (
        model.multi_class == "auto" and (model.classes_.size <= 2 or model.solver == "liblinear"))
    if ovr or model.coef_.shape[0] == 1 or features.shape[1] != model.coef_.shape[1]:
        return model.predict_proba(features)
    return softmax(safe_sparse_dot(features, model.coef_.T, dense_output=True) + model.intercept_, copy=False)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(IntentClassifier, GraphComponent):
    """Logistic regression over TF-IDF character n-grams and the dense sentence features of the message."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """``C``: inverse regularisation; ``dense_weight``: scale of the sentence vector against the n-grams;
        ``min_ngram``/``max_ngram``: character n-gram lengths; ``ranking_length``: intents in the ranking."""
        return {"C": 20.0, "dense_weight": 1.0, "min_ngram": 1, "max_ngram": 4, "max_iter": 3000,
                "ranking_length": 10}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        vectorizer: TfidfVectorizer | None = None,
        model: LogisticRegression | None = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self.vectorizer = vectorizer
        self.model = model

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        return cls(config, model_storage, resource)

    def _new_vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer="char_wb", ngram_range=(int(self.config["min_ngram"]), int(self.config["max_ngram"])),
            preprocessor=prepare, lowercase=False, sublinear_tf=True, vocabulary=vocabulary,
        )

    def _dense(self, messages: list[Message]) -> np.ndarray | None:
        rows = []
        for m in messages:
            sentence = m.get_dense_features(TEXT)[1]
            rows.append(None if sentence is None else np.asarray(sentence.features, dtype=np.float32).reshape(-1))
        width = next((len(r) for r in rows if r is not None), 0)
        if not width:
            return None
        return np.vstack([r if r is not None else np.zeros(width, dtype=np.float32) for r in rows])

    def _features(self, messages: list[Message]) -> csr_matrix:
        assert self.vectorizer is not None
        sparse = self.vectorizer.transform([intent_text(m) for m in messages])
        dense = self._dense(messages)
        if dense is None:
            return sparse.tocsr()
        return hstack([sparse, csr_matrix(dense * float(self.config["dense_weight"]))]).tocsr()

    def train(self, training_data: TrainingData) -> Resource:
        """Fit the n-gram vocabulary and the logistic regression on every intent example."""
        examples = [m for m in training_data.intent_examples if m.get(TEXT) and m.get(INTENT)]
        if not examples:
            return self._resource
        self.vectorizer = self._new_vectorizer().fit([intent_text(m) for m in examples])
        self.model = LogisticRegression(C=float(self.config["C"]), max_iter=int(self.config["max_iter"]))
        self.model.fit(self._features(examples), [m.get(INTENT) for m in examples])
        self.persist()
        return self._resource

    def persist(self) -> None:
        assert self.vectorizer is not None and self.model is not None
        with self._storage.write_to(self._resource) as folder:
            np.savez(folder / ARRAYS, coef=self.model.coef_, intercept=self.model.intercept_,
                     classes=np.asarray(self.model.classes_, dtype=str), idf=self.vectorizer.idf_)
            vocabulary = {k: int(v) for k, v in self.vectorizer.vocabulary_.items()}
            (folder / VOCABULARY).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        """Rebuild the vectorizer and the model from their arrays (an untrained one if there are none)."""
        component = cls(config, model_storage, resource)
        try:
            with model_storage.read_from(resource) as folder:
                arrays = np.load(folder / ARRAYS, allow_pickle=False)
                vocabulary = json.loads((folder / VOCABULARY).read_text(encoding="utf-8"))
                vectorizer = component._new_vectorizer(vocabulary)
                vectorizer.idf_ = arrays["idf"]
                model = LogisticRegression()
                model.coef_, model.intercept_ = arrays["coef"], arrays["intercept"]
                model.classes_ = arrays["classes"]
        except (ValueError, FileNotFoundError):
            logger.debug("LinearIntentClassifier: nothing trained to load")
            return component
        component.vectorizer, component.model = vectorizer, model
        return component

    def process(self, messages: list[Message]) -> list[Message]:
        """Set the intent and its ranking on each message with text."""
        if self.model is None or self.vectorizer is None:
            return messages
        todo = [m for m in messages if m.get(TEXT)]
        if not todo:
            return messages
        probabilities = probabilities_of(self.model, self._features(todo))
        classes = [str(c) for c in self.model.classes_]
        length = int(self.config["ranking_length"]) or len(classes)
        for message, row in zip(todo, probabilities, strict=True):
            order = np.argsort(-row)[:length]
            ranking = [{"name": classes[i], "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
