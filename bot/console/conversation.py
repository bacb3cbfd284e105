"""The conversation side of a handoff, inside the Rasa server: transcript, replies, resume.

The Rasa tracker stays the one transcript: an agent's reply is appended as a
bot turn (``BotUttered`` with the agent in its metadata) under the
conversation's lock, and goes out through the shopper's own channel. Handing
back appends ``ConversationResumed`` and triggers an intent so the assistant
greets the shopper again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME, EXTERNAL_MESSAGE_PREFIX
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    SessionStarted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.wechat import rules as wechat_rules
from bot.wechat.channel import WeChatInput

log = logging.getLogger(__name__)

HANDBACK_INTENT = "handback"  # triggered when an agent ends: the assistant greets and asks for a score
CANCEL_INTENT = "cancel_handoff"  # the shopper went back to the bot while waiting
TRANSCRIPT_LIMIT = 300


class ConsoleUnavailable(Exception):
    """The assistant is not loaded (yet) in this process."""


@dataclass(frozen=True)
class Sent:
    """The outcome of sending one agent message to the shopper."""

    ok: bool
    code: str | None = None  # window_closed | quota_used | not_configured | wechat_refused | no_conversation
    ts: float | None = None
    quota_left: int | None = None
    window_ends: float | None = None


def rasa_agent(app: Any) -> Agent:
    agent = getattr(app.ctx, "agent", None)
    if agent is None or not agent.is_ready():
        raise ConsoleUnavailable("the assistant is not loaded")
    return agent


def input_channel(app: Any, name: str) -> InputChannel | None:
    """The input channel called ``name`` that Rasa mounted (wechat, webchat, …)."""
    for channel in getattr(app.ctx, "input_channels", None) or []:
        if channel.name() == name:
            return channel
    return None


def output_for(app: Any, name: str) -> OutputChannel:
    """Where the assistant's own messages go for a conversation of channel ``name``."""
    channel = input_channel(app, name)
    out = channel.get_output_channel() if channel is not None else None
    return out if out is not None else CollectingOutputChannel()


def _payload_label(text: str, buttons: list[dict[str, Any]]) -> str:
    for b in buttons:
        if b.get("payload") == text:
            return str(b.get("title") or text)
    return text


def render(events: list[Event]) -> list[dict[str, Any]]:
    """The transcript items the console shows: shopper, bot and agent turns, and handoff markers."""
    items: list[dict[str, Any]] = []
    buttons: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, UserUttered):
            text = e.text or ""
            if not text or text.startswith(EXTERNAL_MESSAGE_PREFIX):
                continue
            item = {"kind": "shopper", "ts": e.timestamp, "text": text}
            if text.startswith("/"):
                item["text"] = _payload_label(text, buttons)
                item["button"] = True
            items.append(item)
        elif isinstance(e, BotUttered):
            buttons = list(e.data.get("buttons") or e.data.get("quick_replies") or [])
            agent = (e.metadata or {}).get("agent")
            items.append({
                "kind": "agent" if agent else "bot", "ts": e.timestamp, "text": e.text or "",
                "agent": agent, "buttons": [str(b.get("title", "")) for b in buttons],
            })
        elif isinstance(e, ConversationPaused):
            items.append({"kind": "system", "ts": e.timestamp, "text": "paused"})
        elif isinstance(e, ConversationResumed):
            items.append({"kind": "system", "ts": e.timestamp, "text": "resumed"})
        elif isinstance(e, SessionStarted):
            items.append({"kind": "system", "ts": e.timestamp, "text": "session"})
    return items[-TRANSCRIPT_LIMIT:]


def last_user_at(tracker: DialogueStateTracker) -> float | None:
    """When the shopper last wrote (or clicked, scanned, followed): WeChat's window starts there."""
    for e in reversed(tracker.events):
        if isinstance(e, UserUttered) and not (e.text or "").startswith(EXTERNAL_MESSAGE_PREFIX):
            return e.timestamp
    return None


async def transcript(app: Any, sender_id: str) -> tuple[list[dict[str, Any]], DialogueStateTracker | None]:
    """Every session of the conversation as transcript items, and the tracker."""
    agent = rasa_agent(app)
    tracker = await agent.tracker_store.retrieve_full_tracker(sender_id)
    if tracker is None:
        return [], None
    return render(list(tracker.events)), tracker


async def channel_status(
    app: Any, channel: str, sender_id: str, tracker: DialogueStateTracker | None
) -> dict[str, Any]:
    """What limits replies on this channel now (WeChat's window and quota); empty for web chat."""
    ch = input_channel(app, channel)
    if not isinstance(ch, WeChatInput):
        return {"channel": channel, "live": ch is not None}
    verdict = await wechat_rules.check(ch, sender_id, last_user_at(tracker) if tracker else None)
    return {"channel": channel, "live": True, "ok": verdict.ok, "code": verdict.code,
            "quota_left": verdict.quota_left, "window_ends": verdict.window_ends}


async def say(app: Any, handoff_id: int, sender_id: str, channel: str, text: str, *, agent_name: str,
              agent_username: str) -> Sent:
    """Send an agent's message to the shopper and record it in the tracker as a bot turn.

    Web chat: recorded first, then pushed (the tracker replays it to a page that
    reconnects). WeChat: checked against the window and quota, sent, and only
    recorded once WeChat took it.
    """
    agent = rasa_agent(app)
    ch = input_channel(app, channel)
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.tracker_store.retrieve(sender_id)
        if tracker is None:
            return Sent(False, "no_conversation")
        event = BotUttered(
            text, metadata={"agent": agent_name, "agent_username": agent_username, "handoff": handoff_id},
            timestamp=time.time(),
        )
        if isinstance(ch, WeChatInput):
            verdict = await wechat_rules.check(ch, sender_id, last_user_at(tracker))
            if not verdict.ok:
                return Sent(False, verdict.code, quota_left=verdict.quota_left, window_ends=verdict.window_ends)
            if not await wechat_rules.send(ch, sender_id, text):
                return Sent(False, "wechat_refused", window_ends=verdict.window_ends)
            tracker.update(event)
            await agent.tracker_store.save(tracker)
            left = None if verdict.quota_left is None else max(0, verdict.quota_left - 1)
            return Sent(True, ts=event.timestamp, quota_left=left, window_ends=verdict.window_ends)
        tracker.update(event)
        await agent.tracker_store.save(tracker)
    out = ch.get_output_channel() if ch is not None else None
    if out is not None:
        await out.send_response(sender_id, event.message())
    return Sent(True, ts=event.timestamp)


def _resume_listening(tracker: DialogueStateTracker) -> None:
    """Resume, as if the bot had just listened: the last action of a paused conversation is the
    one that paused it, and the rules expect a turn to start after ``action_listen``."""
    tracker.update(ConversationResumed())
    tracker.update(ActionExecuted(ACTION_LISTEN_NAME))


async def _resume(app: Any, sender_id: str, channel: str, intent: str) -> None:
    agent = rasa_agent(app)
    assert agent.processor is not None
    out = output_for(app, channel)
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.processor.get_tracker(sender_id)
        _resume_listening(tracker)
        if intent in agent.domain.intents:
            # Saves the tracker after the assistant's turn.
            await agent.processor.trigger_external_user_uttered(intent, [], tracker, out)
        else:
            log.warning("intent %r is not in the domain: the conversation resumes without a word", intent)
            await agent.tracker_store.save(tracker)


async def hand_back(app: Any, sender_id: str, channel: str) -> None:
    """The agent ended: the bot takes over again, greets and asks for a score."""
    await _resume(app, sender_id, channel, HANDBACK_INTENT)


async def back_to_bot(app: Any, sender_id: str, channel: str) -> None:
    """The shopper cancelled while waiting: the bot answers again."""
    await _resume(app, sender_id, channel, CANCEL_INTENT)



async def heal(app: Any, sender_id: str, channel: str | None, text: str, metadata: dict[str, Any]) -> bool:
    """A paused conversation with no open handoff (a crash between the two steps of a hand-back):
    resume it and let the assistant answer the message it ignored. True if it was stuck."""
    agent = rasa_agent(app)
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.tracker_store.retrieve(sender_id)
        if tracker is None or not tracker.is_paused():
            return False
        _resume_listening(tracker)
        await agent.tracker_store.save(tracker)
    log.warning("conversation was paused without an open handoff: resumed")
    out = output_for(app, channel or "")
    await agent.handle_message(UserMessage(text, out, sender_id, input_channel=channel, metadata=metadata))
    return True
