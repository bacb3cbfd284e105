"""The conversation broker turns Rasa's events into the core's conversation facts, in order, without text."""

from __future__ import annotations

import asyncio
from typing import Any

from rasa.utils.endpoints import EndpointConfig
from sqlalchemy import select

from bot.brokers import Brokers
from bot.conversations import ConversationBroker, fact
from loyalty import db
from loyalty.conversations.models import Conversation
from tests.loyalty.corekit import T0

START = T0.timestamp()


def user(text: str, intent: str, at: float, sender: str = "wx-o1", channel: str = "wechat",
         **extra: Any) -> dict[str, Any]:
    return {"event": "user", "sender_id": sender, "text": text, "timestamp": START + at, "input_channel": channel,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}}, **extra}


def test_which_events_are_facts() -> None:
    kind, args = fact(user("我的积分", "ask_points", 0)) or ("", {})
    assert kind == "turn" and args["fallback"] is False and args["at"] == T0
    assert fact(user("这个那个", "nlu_fallback", 0))[1]["fallback"] is True  # type: ignore[index]
    assert fact(user("/ask_points", "ask_points", 0))[0] == "turn"  # type: ignore[index] - a button press
    assert fact(user("EXTERNAL: x", "x", 0)) is None
    assert fact(user("hi", "greet", 0, metadata={"is_external": True})) is None
    assert fact(user("hi", "greet", 0, channel="console")) is None
    assert fact({"event": "pause", "sender_id": "wx-o1", "timestamp": START})[0] == "handoff"  # type: ignore[index]
    assert fact({"event": "resume", "sender_id": "wx-o1", "timestamp": START})[0] == "handback"  # type: ignore[index]
    assert fact({"event": "bot", "sender_id": "wx-o1", "text": "你好", "timestamp": START}) is None


def test_the_broker_records_a_conversation_in_order(sqlite_engine: Any) -> None:
    async def go() -> None:
        broker = await Brokers.from_endpoint_config(
            EndpointConfig(type="bot.brokers.Brokers", brokers=["bot.conversations.ConversationBroker"]))
        inner = broker.brokers[0]
        assert isinstance(inner, ConversationBroker)
        broker.publish(user("我的积分", "ask_points", 0))
        broker.publish({"event": "action", "sender_id": "wx-o1", "name": "action_listen", "timestamp": START + 1})
        broker.publish(user("这个那个", "nlu_fallback", 60))
        broker.publish(user("转人工", "handoff", 120))
        broker.publish({"event": "pause", "sender_id": "wx-o1", "timestamp": START + 121})
        broker.publish(user("还在吗", "nlu_fallback", 180))  # to the agent
        broker.publish(user("你好", "greet", 30, sender="web-2", channel="webchat"))
        await inner.drain()
        await broker.close()

    asyncio.run(go())
    rows = db.run(lambda s: [(c.channel, c.user_turns, c.agent_turns, c.fallback_turns, c.handed_off)
                             for c in s.execute(select(Conversation).order_by(Conversation.id)).scalars()],
                  readonly=True)
    assert rows == [("wechat", 4, 1, 1, True), ("webchat", 1, 0, 0, False)]
