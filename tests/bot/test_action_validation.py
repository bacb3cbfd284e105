"""Action server answers are validated as Rasa validates them, with the schema checked once."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction

from bot import action_validation

GOOD: list[dict[str, Any]] = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "points", "value": 120, "timestamp": None}],
     "responses": [{"text": "You have 120 points", "buttons": [{"title": "More", "payload": "/more"}]}]},
    {"events": [{"event": "followup", "name": "action_listen"}, {"event": "active_loop", "name": None}]},
    {},
    {"events": [{"event": "bot", "text": "好的", "data": {"buttons": []}, "metadata": {"utter_action": "utter_ok"}},
                {"event": "user", "text": "hi", "parse_data": {"intent": {"name": "greet", "confidence": 0.9},
                                                               "entities": []}},
                {"event": "action", "name": "action_listen", "policy": None, "confidence": None},
                {"event": "reset_slots"}, {"event": "pause"}, {"event": "resume"}, {"event": "restart"},
                {"event": "session_started"}, {"event": "loop_interrupted", "is_interrupted": True},
                {"event": "action_execution_rejected", "name": "join_form"}]},
]
BAD: list[dict[str, Any]] = [
    {"events": [{"event": "no_such_event"}]},
    {"events": "not a list"},
    {"responses": ["a text, not an object"]},
    {"events": [{"event": "slot", "value": 1}]},  # a slot event without its name
    {"events": [{"event": "slot", "name": 5, "value": 1}]},  # a name that is not a text
    {"events": [{"name": "points"}]},  # no event name
    {"events": ["slot"]},  # not an object
    {"events": [{"event": "slot", "name": "points", "value": 1, "timestamp": "today"}]},
    {"events": [{"event": "user", "text": "hi", "parse_data": {"intent": "greet"}}]},  # intent not an object
    "not an answer",  # type: ignore[list-item]
]


def rasa_result(result: dict[str, Any]) -> bool | str:
    """What Rasa's own method says: True, or the message it raises."""
    try:
        # Rasa's own method, whether or not install() ran already in this process.
        original = action_validation._ORIGINAL or action_validation.rasa_class().__dict__["_validate_action_result"]
        return bool(original(RemoteAction("x", None), result))
    except ValidationError as e:
        return e.message


def ours(result: dict[str, Any]) -> bool | str:
    try:
        return action_validation.validate_action_result(RemoteAction("x", None), result)
    except ValidationError as e:
        return e.message


@pytest.mark.parametrize("result", GOOD + BAD)
def test_the_same_verdict_and_message_as_rasa(result: dict[str, Any]) -> None:
    assert ours(result) == rasa_result(result)


def test_bad_answers_are_refused() -> None:
    assert all(isinstance(ours(r), str) and "Failed to validate Action server response" in str(ours(r)) for r in BAD)
    assert all(ours(r) is True for r in GOOD)


def test_install_puts_it_in_place_once() -> None:
    action_validation.install()
    action_validation.install()
    rasa_class = action_validation.rasa_class()
    assert rasa_class.__dict__["_validate_action_result"] is action_validation.validate_action_result
    with pytest.raises(ValidationError):
        RemoteAction("x", None)._validate_action_result(BAD[0])


@pytest.mark.parametrize("result", GOOD + BAD)
def test_checking_each_event_by_its_kind_accepts_only_what_the_whole_schema_accepts(result: Any) -> None:
    whole = action_validation._validator().is_valid(result)
    assert action_validation.valid_by_kind(result) == whole
    assert whole == (result in GOOD)
