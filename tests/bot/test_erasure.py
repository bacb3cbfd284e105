"""Scrubbing a closed account's personal data out of serialised Rasa events (no database here).

The end-to-end check, a real conversation against SQLite and PostgreSQL
tracker stores, is tests/e2e/test_erasure.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from bot.erasure import MASK, Scrubber, personal_values, requested, scrub_events

ROOT = Path(__file__).resolve().parents[2]
PERSONAL = ["13800138001", "138 0013 8001", "王小明", "1990-05-01", "1990年5月1日", "138****8001"]


def _user(ts: float, text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ranking = [{"name": intent, "confidence": 0.9}, {"name": "inform", "confidence": 0.05}]
    return {
        "event": "user", "timestamp": ts, "text": text, "input_channel": "webchat", "message_id": f"m{ts}",
        "metadata": {"channel": "webchat", "visitor": "v1"},
        "parse_data": {"intent": ranking[0], "entities": entities or [], "text": text,
                       "intent_ranking": ranking, "message_id": f"m{ts}"},
    }


def _slot(ts: float, name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "timestamp": ts, "name": name, "value": value}


def _action(ts: float, name: str) -> dict[str, Any]:
    return {"event": "action", "timestamp": ts, "name": name, "policy": "RulePolicy", "confidence": 1.0}


def _bot(ts: float, text: str, utter: str, **variables: Any) -> dict[str, Any]:
    return {"event": "bot", "timestamp": ts, "text": text, "data": {"buttons": None},
            "metadata": {"utter_action": utter, **variables}}


def conversation() -> list[dict[str, Any]]:
    """A join with phone, name and birthday, the member card, then closing the account."""
    return [
        _action(1, "action_session_start"), {"event": "session_started", "timestamp": 1.1},
        _action(1.2, "action_listen"),
        _user(2, "我要入会，手机138 0013 8001", "join",
              [{"entity": "phone_number", "start": 8, "end": 21, "value": "138 0013 8001",
                "extractor": "RegexEntityExtractor"}]),
        _slot(2.1, "phone", "138 0013 8001"), _action(2.2, "join_form"), _slot(2.3, "phone", "13800138001"),
        _slot(2.4, "requested_slot", "name"), _bot(2.5, "怎么称呼你？", "utter_ask_name"),
        _action(2.6, "action_listen"),
        _user(3, "我叫王小明", "inform"), _slot(3.1, "name", "我叫王小明"), _slot(3.2, "name", "王小明"),
        _action(3.3, "action_listen"),
        _user(4, "1990年5月1日", "inform",
              [{"entity": "date", "start": 0, "end": 10, "value": "1990年5月1日",
                "extractor": "RegexEntityExtractor"}]),
        _slot(4.1, "birthday", "1990-05-01"), _action(4.2, "action_join_member"), _slot(4.3, "phone", None),
        _slot(4.4, "name", None), _action(4.5, "action_listen"),
        _user(5, "会员卡", "member_card"), _action(5.1, "action_member_card"),
        _bot(5.2, "💳 会员卡\n称呼：王小明\n手机：138****8001\n等级：普通", "utter_member_card",
             name="王小明", phone="138****8001", tier="普通"),
        _user(6, "我的另一个号码是 +86 139-1234-5678", "inform"),
        _user(7, "/affirm", "affirm"), _action(7.1, "action_close_account"), _slot(7.2, "is_member", False),
        _bot(7.3, "账户已注销，个人资料已删除。", "utter_account_closed"), _action(7.4, "action_listen"),
    ]


def test_closing_is_recognised_by_the_bots_confirmation() -> None:
    events = conversation()
    assert requested(events)
    assert not requested(events[:-2])


def test_personal_values_come_from_pii_slots_and_the_messages_that_filled_them() -> None:
    values = personal_values(conversation())
    assert {"13800138001", "138 0013 8001", "王小明", "我叫王小明", "1990-05-01", "1990年5月1日",
            "我要入会，手机138 0013 8001"} <= values
    assert "会员卡" not in values and "/affirm" not in values


def test_no_personal_value_is_left_in_any_event() -> None:
    events = conversation()
    changed = scrub_events(copy.deepcopy(events))
    scrubbed = [changed.get(i, e) for i, e in enumerate(events)]
    dumped = json.dumps(scrubbed, ensure_ascii=False)
    for value in [*PERSONAL, "139-1234-5678", "+86 139"]:
        assert value not in dumped, value
    # The shopper's other messages and the bot's other words survive.
    assert "会员卡" in dumped and "账户已注销" in dumped and "等级：普通" in dumped


def test_the_assistants_own_names_are_kept_so_the_tracker_still_loads() -> None:
    events = conversation()
    changed = scrub_events(copy.deepcopy(events))
    scrubbed = [changed.get(i, e) for i, e in enumerate(events)]
    for before, after in zip(events, scrubbed, strict=True):
        assert after["event"] == before["event"] and after.get("name") == before.get("name")
        if before["event"] == "user":
            assert after["parse_data"]["intent"]["name"] == before["parse_data"]["intent"]["name"]
            assert [r["name"] for r in after["parse_data"]["intent_ranking"]] == [
                r["name"] for r in before["parse_data"]["intent_ranking"]]
            assert [x["entity"] for x in after["parse_data"]["entities"]] == [
                x["entity"] for x in before["parse_data"]["entities"]]
        if before["event"] == "bot":
            assert after["metadata"]["utter_action"] == before["metadata"]["utter_action"]
    # Personal slot values are unset rather than replaced by a mask.
    assert [e["value"] for e in scrubbed if e["event"] == "slot" and e["name"] in ("phone", "name", "birthday")] == [
        None] * 7
    domain = Domain.load(str(ROOT / "domain"))
    tracker = DialogueStateTracker.from_dict("v1", scrubbed, domain.slots)
    assert tracker.get_slot("phone") is None and tracker.get_slot("is_member") is False
    assert tracker.latest_message.intent["name"] == "affirm"
    assert len(tracker.events) == len(events)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("手机13800138001", f"手机{MASK}"),
        ("call 138-0013-8001 please", f"call {MASK} please"),
        ("+8613800138001", MASK),
        ("卡号 138****8001", f"卡号 {MASK}"),
        ("订单 202401011380013800199", "订单 202401011380013800199"),  # digits inside a longer number stay
        ("我叫王小明，你好", f"我叫{MASK}，你好"),
        ("王", MASK),  # a one-character value only where it is the whole text…
        ("王府井店", "王府井店"),  # …never inside other words
    ],
)
def test_scrubber_masks_numbers_and_values(text: str, expected: str) -> None:
    assert Scrubber({"王小明", "王"}).text(text) == expected
