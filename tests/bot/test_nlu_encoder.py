"""The sentence encoder featurizer: a text seen again gets the vector it got the first time, from memory."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from threadpoolctl import threadpool_info

from bot.nlu import encoder
from bot.nlu.encoder import SentenceEncoderFeaturizer


def message(text: str) -> Message:
    m = Message(data={TEXT: text})
    m.set(TOKENS_NAMES[TEXT], [Token(w, i) for i, w in enumerate(text.split())])
    return m


def sentence(m: Message) -> np.ndarray:
    return np.asarray(m.get_dense_features(TEXT)[1].features)


@pytest.fixture(scope="module")
def featurizer() -> SentenceEncoderFeaturizer:
    return SentenceEncoderFeaturizer({**SentenceEncoderFeaturizer.get_default_config(), "alias": "e5"}, "e5")


def test_a_text_seen_again_gets_the_same_features(featurizer: SentenceEncoderFeaturizer) -> None:
    texts = ["how many points do I have", "我的 积分 有多少", "thanks"]
    first = featurizer.process([message(t) for t in texts])
    calls = []
    original = featurizer.encode
    featurizer.encode = lambda batch: calls.append(batch) or original(batch)  # type: ignore[method-assign]
    try:
        again = featurizer.process([message(t) for t in texts])
    finally:
        del featurizer.encode
    assert calls == []  # all three from memory
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(sentence(a), sentence(b))
        sequence = b.get_dense_features(TEXT)[0]
        assert sequence is not None and sequence.type == FEATURE_TYPE_SEQUENCE
        assert sequence.features.shape == (len(b.get(TOKENS_NAMES[TEXT])), sentence(b).shape[1])
    # Computed afresh, the vector is the same one.
    assert np.array_equal(sentence(again[0]), original([texts[0]]))
    assert b.get_dense_features(TEXT)[1].type == FEATURE_TYPE_SENTENCE


def test_the_cache_keeps_the_latest_texts_only(featurizer: SentenceEncoderFeaturizer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder, "CACHE_TEXTS", 2)
    featurizer._cache.clear()
    for text in ["one", "two", "one", "three"]:
        featurizer.process([message(text)])
    assert list(featurizer._cache) == ["one", "three"]  # "two" was the least recently used


def test_training_examples_do_not_fill_the_cache(featurizer: SentenceEncoderFeaturizer) -> None:
    featurizer._cache.clear()
    data = TrainingData([message("积分 余额"), message("points balance")])
    featurizer.process_training_data(data)
    assert all(sentence(m).shape == (1, 384) for m in data.training_examples)
    assert not featurizer._cache


def openmp_threads() -> set[int]:
    """The OpenMP thread counts the calling thread would use."""
    return {p["num_threads"] for p in threadpool_info() if p["internal_api"] == "openmp"}


def test_training_examples_are_encoded_on_every_core_as_serving_encodes_them() -> None:
    featurizer = SentenceEncoderFeaturizer(
        {**SentenceEncoderFeaturizer.get_default_config(), "alias": "e5", "training_threads": 2}, "e5")
    texts = ["积分什么时候到账", "which coupons can I still get", "我想要 member code"]
    served = featurizer.process([message(t) for t in texts])
    assert openmp_threads() == {1}  # serving: one thread, whatever the runtime started with

    seen: list[set[int]] = []
    original = featurizer.encode
    featurizer.encode = lambda batch: seen.append(openmp_threads()) or original(batch)  # type: ignore[method-assign]
    try:
        training = featurizer.process_training_data(TrainingData([message(t) for t in texts]))
    finally:
        del featurizer.encode
    assert seen == [{2}]
    assert openmp_threads() == {1}  # put back for serving
    for a, b in zip(training.training_examples, served, strict=True):
        assert np.allclose(sentence(a), sentence(b), atol=1e-5)
