"""The clarifying question: two buttons for two plausible meanings, else a request to rephrase."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.clarify import ActionClarify, buttons, choices
from tests.actions.conftest import domain


def ranking(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"name": "nlu_fallback", "confidence": pairs[0][1]}, *({"name": n, "confidence": c} for n, c in pairs)]


@pytest.mark.parametrize("ranked, offered", [
    ([("my_coupons", 0.5), ("list_coupons", 0.4)], ("my_coupons", "list_coupons")),
    ([("complain", 0.6), ("points_history", 0.3)], ("complain", "points_history")),
    ([("claim_coupon", 0.4), ("my_coupons", 0.35)], ("list_coupons", "my_coupons")),
    ([("claim_coupon", 0.4), ("list_coupons", 0.35)], ()),  # both mean the list: nothing to choose
    ([("greet", 0.4), ("help", 0.3)], ()),  # small talk is never offered
    ([("ask_points", 0.2), ("complain", 0.15)], ()),  # too unsure to offer anything
    ([("ask_points", 0.5), ("complain", 0.05)], ()),
])
def test_choices(ranked: list[tuple[str, float]], offered: tuple[str, ...]) -> None:
    assert choices(ranking(*ranked)) == offered


def test_buttons_in_the_shoppers_language() -> None:
    assert buttons(("my_coupons", "list_coupons"), "zh") == [
        {"title": "我已有的券", "payload": "/my_coupons"}, {"title": "现在能领的券", "payload": "/list_coupons"}]
    assert [b["title"] for b in buttons(("complain", "points_history"), "en")] == [
        "Make a complaint", "Points history"]


def _run(ranked: list[dict[str, Any]], language: str = "zh") -> list[dict[str, Any]]:
    import asyncio

    latest = {"intent": ranked[0], "intent_ranking": ranked, "entities": [], "text": "?"}
    slots = {name: None for name in domain().get("slots", {})}
    slots["language"] = language
    tracker = Tracker("web-1", slots, latest, [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    assert asyncio.run(ActionClarify().run(dispatcher, tracker, domain())) == []
    return dispatcher.messages


def test_the_action_asks_with_two_buttons_or_to_rephrase() -> None:
    asked = _run(ranking(("my_coupons", 0.5), ("list_coupons", 0.4)), "en")
    assert [m["response"] for m in asked] == ["utter_clarify"]
    assert [b["payload"] for b in asked[0]["buttons"]] == ["/my_coupons", "/list_coupons"]
    assert [m["response"] for m in _run(ranking(("greet", 0.3), ("help", 0.2)))] == ["utter_ask_rephrase"]
    assert "utter_clarify" in domain()["responses"]
