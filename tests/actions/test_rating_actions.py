"""Asking for and recording scores: the bot's own after a goodbye, the agent's after a handback."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from actions.rating import ActionAskBotRating, ActionRecordRating
from loyalty import db
from loyalty.conversations import service as conversations
from loyalty.conversations.models import BotRating
from loyalty.handoff.models import Handoff
from tests.actions.conftest import domain, run

SESSION = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)
EARLIER = SESSION - timedelta(days=1)


def started(at: datetime = SESSION) -> list[dict[str, Any]]:
    return [{"event": "action", "name": "action_session_start", "timestamp": at.timestamp()},
            {"event": "session_started", "timestamp": at.timestamp()},
            {"event": "action", "name": "action_listen"}]


def user(intent: str) -> dict[str, Any]:
    return {"event": "user", "text": intent, "parse_data": {"intent": {"name": intent}, "entities": []},
            "input_channel": "webchat"}


def bot(response: str) -> list[dict[str, Any]]:
    return [{"event": "action", "name": response},
            {"event": "bot", "text": response, "metadata": {"utter_action": response}}]


def asked(history: list[dict[str, Any]]) -> bool:
    r = run(ActionAskBotRating(), intent="goodbye", text="再见", history=history)
    return r.responses == ["utter_ask_bot_rating"]


def test_a_goodbye_after_a_real_question_asks_for_a_score() -> None:
    assert asked(started() + [user("greet"), *bot("utter_greet"), user("ask_points"),
                              {"event": "action", "name": "action_show_points"}])
    # Not understood at all is worth hearing about too.
    assert asked(started() + [user("nlu_fallback"), {"event": "action", "name": "action_clarify"}])


@pytest.mark.parametrize("history", [
    [],  # the goodbye alone
    [user("greet"), *bot("utter_greet")],  # hello, bye
    [user("thank"), *bot("utter_you_are_welcome"), user("affirm")],  # small talk only
], ids=["goodbye only", "greet", "small talk"])
def test_a_conversation_of_small_talk_is_not_asked(history: list[dict[str, Any]]) -> None:
    assert not asked(started() + history)


@pytest.mark.parametrize("history", [
    [user("human"), {"event": "action", "name": "action_handoff"}, {"event": "pause"}],
    [user("human"), {"event": "action", "name": "action_handoff"}, user("cancel_handoff"),
     {"event": "action", "name": "action_cancel_handoff"}],
    [{"event": "pause"}, user("ask_points"), {"event": "resume"}, user("handback"), *bot("utter_handback"),
     *bot("utter_ask_rating")],
    [user("close_account"), {"event": "action", "name": "action_close_account"},
     {"event": "bot", "text": "…", "metadata": {"utter_action": "utter_account_closed"}}],
], ids=["queued", "cancelled", "agent handed back", "account closed"])
def test_no_bot_score_when_a_person_took_part_or_the_account_is_closed(history: list[dict[str, Any]]) -> None:
    assert not asked(started() + [user("ask_points"), {"event": "action", "name": "action_show_points"}, *history])


def test_asked_once_per_session() -> None:
    first = started(EARLIER) + [user("ask_points"), *bot("utter_goodbye"),
                                {"event": "bot", "metadata": {"utter_action": "utter_ask_bot_rating"}}]
    assert not asked(first + [user("goodbye"), user("recommend")])  # the same session: asked already
    assert asked(first + started() + [user("recommend")])  # a new session


def answer(score: str | None, history: list[dict[str, Any]], text: str = "", channel: str = "webchat") -> Any:
    entities = [{"entity": "rating", "value": score}] if score is not None else []
    return run(ActionRecordRating(), intent="rate", entities=entities, text=text, history=history, channel=channel)


def bot_asked() -> list[dict[str, Any]]:
    return started() + [user("ask_points"), user("goodbye"), *bot("utter_goodbye"),
                        {"event": "bot", "metadata": {"utter_action": "utter_ask_bot_rating"}}]


def bot_ratings() -> list[tuple[str, str, int | None, int, datetime]]:
    return db.run(lambda s: [(r.sender_key, r.channel, r.member_id, r.rating, r.session_started_at) for r in
                             s.execute(select(BotRating).order_by(BotRating.id)).scalars()], readonly=True)


def test_the_score_after_the_bots_question_is_kept_once(shop: dict[str, Any]) -> None:
    r = answer("5", bot_asked(), text="5分")
    assert r.responses == ["utter_thanks_bot_rating"]
    key = conversations.sender_key("web-visitor-1")
    assert bot_ratings() == [(key, "webchat", shop["member_id"], 5, SESSION)]
    again = answer("3", bot_asked(), text="3分")  # a second score (or the action retried): the first counts
    assert again.responses == ["utter_anything_else"]
    assert [r[3] for r in bot_ratings()] == [5]


@pytest.mark.parametrize("text, score", [("5", 5), ("五分", 5), ("4/5", 4), ("满分", 5)])
def test_a_typed_score_the_model_found_no_entity_in(sqlite_engine: Any, text: str, score: int) -> None:
    assert answer(None, bot_asked(), text=text).responses == ["utter_thanks_bot_rating"]
    assert [(r[2], r[3]) for r in bot_ratings()] == [(None, score)]  # a visitor: no member


@pytest.mark.parametrize("text, score", [("9分", "9"), ("好评", None), ("0", None)])
def test_a_bad_score_asks_the_same_question_again_and_writes_nothing(sqlite_engine: Any, text: str,
                                                                    score: str | None) -> None:
    assert answer(score, bot_asked(), text=text).responses == ["utter_ask_bot_rating"]
    assert bot_ratings() == []


def _ended_handoff(sender: str) -> int:
    def add(s: Any) -> int:
        now = datetime.now(timezone.utc)
        h = Handoff(sender_id=sender, channel="webchat", reason="request", priority=0, language="zh",
                    status="closed", created_at=now - timedelta(minutes=10), closed_at=now - timedelta(minutes=1))
        s.add(h)
        s.flush()
        return int(h.id)

    return db.run(add)


def test_the_score_after_a_handback_still_goes_to_the_handoff(sqlite_engine: Any) -> None:
    h = _ended_handoff("web-visitor-1")
    history = started() + [{"event": "pause"}, user("handback"), {"event": "resume"}, *bot("utter_handback"),
                           *bot("utter_ask_rating")]
    assert answer("4", history).responses == ["utter_thanks_rating"]
    assert db.run(lambda s: s.get(Handoff, h).rating, readonly=True) == 4
    assert bot_ratings() == []
    assert answer("x", history).responses == ["utter_ask_rating"]  # a bad one: the agent's question again


def test_the_bots_question_of_an_earlier_session_is_not_answered_now(sqlite_engine: Any) -> None:
    history = [*started(EARLIER), *bot_asked()[3:], *started()]
    assert answer("5", history).responses == ["utter_anything_else"]  # no handoff waits either
    assert bot_ratings() == []


def test_the_database_down_gets_the_standard_apology(tmp_path: Any) -> None:
    db.configure(db.make_engine(f"sqlite:///{tmp_path}/missing/dir/loyalty.db"))
    assert answer("5", bot_asked()).responses == ["utter_service_unavailable"]
    # Asking needs no database.
    assert asked(started() + [user("ask_points")])


def test_on_wechat_the_choice_number_is_the_score() -> None:
    """WeChat shows buttons as numbered lines and takes a typed number as that choice: "4" is 4 points."""
    from bot.wechat.outbound import render_buttons

    for variation in domain()["responses"]["utter_ask_bot_rating"]:
        text, choices = render_buttons(variation["text"], variation["buttons"])
        assert [payload for _, payload in choices] == [f'/rate{{"rating": "{n}"}}' for n in range(1, 6)]
        assert text.splitlines()[-1] in ("5. 5分", "5. 5")
