"""The linear intent classifier: trains on n-grams plus dense sentence features, stores arrays, loads them back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear import LinearIntentClassifier

EXAMPLES = {
    "ask_points": ["我的积分", "积分余额", "how many points", "points balance", "积分还有多少"],
    "my_coupons": ["我的券", "我有哪些券", "my coupons", "coupons i have", "我手上的券"],
    "list_coupons": ["有什么券可以领", "能领什么券", "coupons to claim", "what coupons can i get", "领券"],
}


def message(text: str, intent: str | None = None) -> Message:
    m = Message(data={TEXT: text, **({"intent": intent} if intent else {})})
    # A stand-in for the encoder: a fixed unit vector per text.
    seed = int(hashlib.md5(text.encode()).hexdigest()[:8], 16)
    vector = np.random.default_rng(seed).normal(size=(1, 8)).astype(np.float32)
    vector /= np.linalg.norm(vector)
    m.add_features(Features(vector, FEATURE_TYPE_SENTENCE, TEXT, "encoder"))
    return m


def test_train_store_load_and_rank(tmp_path: Path) -> None:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("linear")
    context = ExecutionContext(GraphSchema({}), "1")
    clf = LinearIntentClassifier.create({"C": 10.0, "dense_weight": 0.3}, storage, resource, context)
    data = TrainingData([message(t, i) for i, texts in EXAMPLES.items() for t in texts])
    clf.train(data)

    loaded = LinearIntentClassifier.load({"C": 10.0, "dense_weight": 0.3}, storage, resource, context)
    probe = [message("我积分多少"), message("which coupons do i have"), message("")]
    loaded.process(probe)
    assert probe[0].get("intent")["name"] == "ask_points"
    ranking = probe[1].get("intent_ranking")
    assert [r["name"] for r in ranking][:1] == ["my_coupons"] and len(ranking) == 3
    assert abs(sum(r["confidence"] for r in ranking) - 1.0) < 1e-6
    assert probe[2].get("intent") is None  # no text, no guess
    # The same model before and after storing.
    again = [message("我积分多少")]
    clf.process(again)
    assert again[0].get("intent") == probe[0].get("intent")


def test_probabilities_are_exactly_scikit_learns() -> None:
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    from bot.nlu.linear import probabilities_of

    rng = np.random.default_rng(7)
    dense = rng.random((60, 8)).astype(np.float32)
    sparse = csr_matrix((rng.random((60, 40)) > 0.8) * rng.random((60, 40)))
    features = hstack([sparse, csr_matrix(dense * 2.0)]).tocsr()
    for classes in (4, 2):
        labels = rng.integers(0, classes, 60)
        for model in (LogisticRegression(C=30, max_iter=500), LogisticRegression(multi_class="ovr", max_iter=500)):
            model.fit(features, labels)
            # The same numbers, not close ones: the intent and its confidence must not move.
            assert np.array_equal(probabilities_of(model, features[:5]), model.predict_proba(features[:5]))
