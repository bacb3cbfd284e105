"""The review broker keeps fallbacks, gated and low-confidence messages (masked, in the core); nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa.utils.endpoints import EndpointConfig

from bot.brokers import Brokers
from bot.nlu_review import ReviewBroker, review_row
from loyalty import db
from loyalty.nlu_review import service as review


def user(text: str, intent: str, confidence: float, *ranking: tuple[str, float], **extra: Any) -> dict[str, Any]:
    parse: dict[str, Any] = {
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        "entities": [{"entity": "language", "value": "zh"}],
        **extra,
    }
    return {"event": "user", "sender_id": "wx-o123", "text": text, "parse_data": parse, "input_channel": "wechat"}


def test_what_is_kept_and_why() -> None:
    fallback = user("这个那个", "nlu_fallback", 0.4, ("nlu_fallback", 0.4), ("complain", 0.4), ("greet", 0.2))
    row = review_row(fallback)
    assert row is not None and row["reason"] == "fallback"
    assert (row["intent"], row["second_intent"], row["language"]) == ("complain", "greet", "zh")

    gated = user("积分到账没 急", "nlu_fallback", 0.62, ("nlu_fallback", 0.62), ("complain", 0.62),
                 ("points_history", 0.3), nlu_gate="complain below 0.70")
    assert review_row(gated)["reason"] == "gated"  # type: ignore[index]

    unsure = user("有啥好的", "recommend", 0.42, ("recommend", 0.42), ("list_coupons", 0.3))
    assert review_row(unsure)["reason"] == "low_confidence"  # type: ignore[index]

    assert review_row(user("我的积分", "ask_points", 0.97, ("ask_points", 0.97))) is None
    assert review_row(user("/ask_points", "ask_points", 1.0)) is None  # a button
    assert review_row({**fallback, "metadata": {"is_external": True}}) is None
    assert review_row({**fallback, "event": "bot"}) is None


def test_the_broker_records_masked_text_in_the_core(sqlite_engine: Any) -> None:
    async def go() -> None:
        broker = await Brokers.from_endpoint_config(
            EndpointConfig(type="bot.brokers.Brokers", brokers=["bot.nlu_review.ReviewBroker"]))
        assert isinstance(broker.brokers[0], ReviewBroker)
        broker.publish(user("我手机13812345678积分没到", "nlu_fallback", 0.3, ("complain", 0.3), ("ask_points", 0.2)))
        broker.publish(user("我的积分", "ask_points", 0.97, ("ask_points", 0.97)))
        broker.publish({"event": "action", "sender_id": "wx-o123", "name": "action_listen"})
        await broker.brokers[0].drain()  # type: ignore[attr-defined]

    asyncio.run(go())
    items = db.run(review.messages, readonly=True)
    assert [(i.text, i.reason, i.channel, i.intent) for i in items] == [
        ("我手机***********积分没到", "fallback", "wechat", "complain")]


def test_a_failing_broker_does_not_stop_the_others() -> None:
    class Boom(ReviewBroker):
        def publish(self, event: dict[str, Any]) -> None:
            raise RuntimeError("down")

    seen: list[dict[str, Any]] = []

    class Tap(ReviewBroker):
        def publish(self, event: dict[str, Any]) -> None:
            seen.append(event)

    Brokers([Boom(), Tap()]).publish({"event": "user"})
    assert seen == [{"event": "user"}]


@pytest.mark.parametrize("path", ["endpoints.yml", "endpoints.prod.yml"])
def test_the_endpoints_name_every_broker(path: str) -> None:
    import yaml  # type: ignore[import-untyped]

    from tests.actions.conftest import ROOT

    broker = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))["event_broker"]
    assert broker == {"type": "bot.brokers.Brokers",
                      "brokers": ["bot.console.broker.ConsoleBroker", "bot.nlu_review.ReviewBroker",
                                  "bot.conversations.ConversationBroker"]}
