"""Confidence gates: costly intents need confidence, blurred pairs ask; the ranking stays for the question."""

from __future__ import annotations

from typing import Any

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.gate import DEFAULT_PAIRS, DEFAULT_THRESHOLDS, ConfidenceGate, gate_reason


def ranking(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"name": n, "confidence": c} for n, c in pairs]


@pytest.mark.parametrize("ranked, gated", [
    ([("complain", 0.55), ("points_history", 0.1)], True),  # a handoff needs 0.6
    ([("complain", 0.93), ("points_history", 0.05)], False),
    ([("human", 0.58), ("help", 0.3)], True),
    ([("close_account", 0.49), ("opt_out", 0.2)], True),
    ([("opt_out", 0.9), ("stop", 0.05)], False),
    ([("exchange_coupon", 0.38), ("list_coupons", 0.3)], True),
    ([("my_coupons", 0.45), ("list_coupons", 0.4)], True),  # close call between the two coupon meanings
    ([("list_coupons", 0.62), ("my_coupons", 0.3)], False),
    ([("points_history", 0.5), ("complain", 0.3)], True),  # points vs complaint: lead 0.2 < 0.25
    ([("ask_points", 0.85), ("complain", 0.1)], False),
    ([("human", 0.55), ("ask_tier", 0.4)], True),  # "is there a dedicated agent at my tier?"
    ([("greet", 0.5), ("help", 0.45)], False),  # cheap intents: the FallbackClassifier's business
])
def test_gate_reason(ranked: list[tuple[str, float]], gated: bool) -> None:
    assert (gate_reason(ranking(*ranked), DEFAULT_THRESHOLDS, DEFAULT_PAIRS) is not None) is gated


def test_a_gated_message_becomes_nlu_fallback_with_its_ranking_kept() -> None:
    gate = ConfidenceGate(DEFAULT_THRESHOLDS, DEFAULT_PAIRS)
    ranked = ranking(("my_coupons", 0.5), ("list_coupons", 0.4), ("greet", 0.1))
    m = Message(data={"text": "券呢", "intent": ranked[0], "intent_ranking": ranked})
    sure = Message(data={"text": "我的券", "intent": {"name": "my_coupons", "confidence": 0.95},
                         "intent_ranking": ranking(("my_coupons", 0.95), ("list_coupons", 0.03))})
    gate.process([m, sure])
    assert m.get("intent") == {"name": "nlu_fallback", "confidence": 0.5}
    assert [r["name"] for r in m.get("intent_ranking")] == ["nlu_fallback", "my_coupons", "list_coupons", "greet"]
    assert "list_coupons/my_coupons" in m.get("nlu_gate")
    assert sure.get("intent")["name"] == "my_coupons" and sure.get("nlu_gate") is None


def test_a_fallback_already_is_left_alone() -> None:
    ranked = [{"name": "nlu_fallback", "confidence": 0.4}, *ranking(("complain", 0.4), ("greet", 0.3))]
    m = Message(data={"text": "嗯", "intent": ranked[0], "intent_ranking": ranked})
    ConfidenceGate(DEFAULT_THRESHOLDS, DEFAULT_PAIRS).process([m])
    assert m.get("intent_ranking") == ranked and m.get("nlu_gate") is None
