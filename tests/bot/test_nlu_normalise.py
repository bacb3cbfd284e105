"""The chat normaliser: slang and 繁體 are read as plain words, numbers that may be amounts stay as typed."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.hant import simplified
from bot.nlu.linear import LinearIntentClassifier
from bot.nlu.normalise import CANONICAL_TEXT, ChatNormaliser, canonical, intent_text


@pytest.mark.parametrize("text, plain", [
    ("88", "拜拜"),
    ("886", "拜拜"),
    ("886~", "拜拜~"),
    ("88啦", "拜拜啦"),
    ("好的，88", "好的，拜拜"),
    ("88 88", "拜拜 拜拜"),
    ("3q", "谢谢"),
    ("3Q啦", "谢谢啦"),
    ("3q3q", "谢谢"),
    ("蟹蟹你", "谢谢你"),
    ("thx!", "thanks!"),
    ("thxxx", "thanks"),
    ("tysm 🙏", "thanks 🙏"),
    ("nice one, ta", "nice one, thanks"),
    ("adios", "bye"),
    ("cya tmr", "bye tomorrow"),
    ("pls show my pts", "please show my points"),
    ("kf在吗", "客服在吗"),
    ("jf还有多少", "积分还有多少"),
    ("我的會員碼", "我的会员码"),
    ("註冊會員", "注册会员"),
])
def test_slang_and_traditional_characters_are_written_out(text: str, plain: str) -> None:
    assert canonical(text) == plain


@pytest.mark.parametrize("text", [
    "还剩88积分",  # an amount
    "我还剩88",
    "满88减10",
    "88折",
    "打88折的券",
    "积分还有 88",  # a unit elsewhere in the message
    "第88号",
    "code 88",
    "13888888888",  # phone numbers, whole or spaced
    "138 8888 8888",
    "我的手机 139 0088 1234",
    "SH001",  # store and coupon codes
    "WELCOME20",
    "888",  # not a known slang number
    "thxbox",  # slang only as a whole token
    "ta的积分呢",  # "ta" is 他/她 in Chinese chat
    "ok",
    "我的积分",
    "",
])
def test_amounts_codes_and_ordinary_text_stay_as_typed(text: str) -> None:
    assert canonical(text) == text


def test_simplified_keeps_simplified_and_latin_text() -> None:
    assert simplified("我的积分 points 123") == "我的积分 points 123"
    assert simplified("還有幾張優惠券") == "还有几张优惠券"


def test_the_component_sets_the_canonical_text_and_leaves_the_text() -> None:
    normaliser = ChatNormaliser()
    slang, plain = Message(data={TEXT: "3q 啦"}), Message(data={TEXT: "我的积分"})
    normaliser.process([slang, plain])
    assert slang.get(TEXT) == "3q 啦" and slang.get(CANONICAL_TEXT) == "谢谢 啦"
    assert plain.get(CANONICAL_TEXT) is None and intent_text(plain) == "我的积分"
    data = TrainingData([Message(data={TEXT: "thx", "intent": "thank"})])
    normaliser.process_training_data(data)
    assert intent_text(data.training_examples[0]) == "thanks"


def test_the_intent_classifier_reads_the_canonical_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    def message(text: str, intent: str | None = None) -> Message:
        m = Message(data={TEXT: text, **({"intent": intent} if intent else {})})
        m.add_features(Features(np.ones((1, 4), dtype=np.float32) / 2, FEATURE_TYPE_SENTENCE, TEXT, "e5"))
        return m

    examples = {"thank": ["谢谢", "谢谢你", "thanks", "thank you"], "goodbye": ["拜拜", "再见", "bye", "see you"]}
    data = TrainingData([message(t, i) for i, texts in examples.items() for t in texts])
    normaliser = ChatNormaliser()
    normaliser.process_training_data(data)
    clf = LinearIntentClassifier.create({"C": 10.0}, LocalModelStorage(tmp_path), Resource("linear"),
                                        ExecutionContext(GraphSchema({}), "1"))
    clf.train(data)
    probes = normaliser.process([message("3q"), message("886")])
    clf.process(probes)
    assert [p.get("intent")["name"] for p in probes] == ["thank", "goodbye"]
