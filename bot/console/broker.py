"""A Rasa event broker that tells the agent console what happens in handed-over conversations.

Configure in endpoints.yml::

    event_broker:
      type: bot.console.broker.ConsoleBroker

Rasa 3.6 publishes every new tracker event when a tracker is saved
(``TrackerStore.stream_events``), paused conversations included: their user
turns are recorded (NLU runs, no action is predicted) and saved like any
other. The broker gathers the events of one save, and for a conversation
with an open handoff:

- a ``pause`` (action_handoff ran): the queue changed, push it to consoles;
- a shopper's message: push it to consoles, or, while still waiting and the
  shopper asked to go back (``cancel_handoff``), cancel the handoff and resume;
- a ``restart``: the handoff ends.

A new session keeps an open handoff paused by itself (``action_session_start``
pauses it in the same turn, before anything is predicted).

A conversation paused with no open handoff (a crash between closing and
resuming) is resumed and its message answered. A save in which the bot
confirms a closed account has the conversation's personal data scrubbed
from the tracker store (bot/erasure.py). Publishing never blocks or fails
the turn: the work runs in a task after the save.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import AbstractEventLoop
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.shared.core.constants import EXTERNAL_MESSAGE_PREFIX
from rasa.utils.endpoints import EndpointConfig

from bot import erasure
from bot.console import conversation, runtime
from bot.console.live import live
from loyalty import db
from loyalty.handoff import service

log = logging.getLogger(__name__)

WATCHED = {"user", "bot", "action", "pause", "resume", "restart", "session_started"}
TRIGGERS = {"user", "pause", "restart"}
CANCEL_INTENTS = {conversation.CANCEL_INTENT, "stop"}
CANCEL_CONFIDENCE = 0.6  # typed "不用了/算了" must be understood clearly to leave the queue


def _intent(event: dict[str, Any]) -> tuple[str | None, float]:
    intent = (event.get("parse_data") or {}).get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0.0)


def _external(event: dict[str, Any]) -> bool:
    return (event.get("text") or "").startswith(EXTERNAL_MESSAGE_PREFIX) or bool(
        (event.get("metadata") or {}).get("is_external")
    )


class ConsoleBroker(EventBroker):
    """Forwards what matters of each tracker save to the console (in this process or via Redis)."""

    def __init__(self) -> None:
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> ConsoleBroker:
        return cls()

    def publish(self, event: dict[str, Any]) -> None:
        """Called by Rasa for every new event of a saved tracker (on the event loop)."""
        sender = event.get("sender_id")
        if not sender or event.get("event") not in WATCHED:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published outside the server (e.g. `rasa export`): nothing to tell
            return
        batch = self._pending.get(sender)
        if batch is not None:
            batch.append(event)
            return
        self._pending[sender] = [event]
        # Rasa publishes a save's events in one synchronous loop: by the next tick the batch is whole.
        loop.call_soon(self._start, sender)

    def _start(self, sender: str) -> None:
        events = self._pending.pop(sender, [])
        self._spawn(self._handle(sender, events))
        if erasure.requested(events):
            self._spawn(self._erase(sender))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _erase(self, sender: str) -> None:
        """The account behind this conversation was closed: scrub its personal data from the tracker."""
        app = runtime.app()
        agent = getattr(getattr(app, "ctx", None), "agent", None)
        if agent is None:
            log.error("account closed but no assistant in this process: conversation not scrubbed")
            return
        try:
            await erasure.erase_conversation(agent, sender)
        except Exception:
            log.exception("erasing a closed account's conversation failed")

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the work started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
            if timeout is not None:
                break

    async def close(self) -> None:
        await self.drain(timeout=10)

    async def _handle(self, sender: str, events: list[dict[str, Any]]) -> None:
        kinds = [e.get("event") for e in events]
        if not TRIGGERS & set(kinds):
            return  # the console's own bot turns: it has told the consoles itself
        app = runtime.app()
        try:
            h = await db.arun(service.open_for, sender, readonly=True)
            if h is None:
                await self._maybe_stuck(app, sender, events)
                return
            if "restart" in kinds:
                ended = await db.arun(service.end_for_restart, sender)
                if ended is not None:
                    await live.broadcast({"type": "ended", "handoff": ended.id, "by": "restart"})
                    live.queue_changed()
                return
            await self._messages(app, h, events)
            if "pause" in kinds:
                live.queue_changed()
        except Exception:
            log.exception("console broker failed on a conversation update")

    async def _messages(self, app: Any, h: service.HandoffView, events: list[dict[str, Any]]) -> None:
        kinds = [e.get("event") for e in events]
        # User turns before the pause in the same save are what led to the handoff.
        start = max((i for i, k in enumerate(kinds) if k == "pause"), default=-1) + 1
        for e in events[start:]:
            if e.get("event") != "user" or _external(e):
                continue
            intent, confidence = _intent(e)
            wants_out = intent in CANCEL_INTENTS and confidence >= CANCEL_CONFIDENCE
            if wants_out and h.status == "queued" and app is not None:
                if await db.arun(service.cancel, h.id, by="shopper"):
                    await conversation.back_to_bot(app, h.sender_id, h.channel)
                    await live.broadcast({"type": "ended", "handoff": h.id, "by": "shopper"})
                    live.queue_changed()
                    return
            await live.broadcast({
                "type": "message", "handoff": h.id, "from": "shopper", "text": e.get("text") or "",
                "ts": e.get("timestamp"), "wants_bot": wants_out,
            })

    async def _maybe_stuck(self, app: Any, sender: str, events: list[dict[str, Any]]) -> None:
        """A user turn with no action after it means the conversation is paused; without a handoff it is stuck."""
        users = [i for i, e in enumerate(events) if e.get("event") == "user" and not _external(e)]
        if not users or app is None:
            return
        last = users[-1]
        if any(e.get("event") == "action" for e in events[last + 1 :]):
            return
        e = events[last]
        meta = dict(e.get("metadata") or {})
        if meta.get("console_healed"):
            return  # never loop on the same message
        meta["console_healed"] = True
        if await conversation.heal(app, sender, e.get("input_channel"), e.get("text") or "", meta):
            live.queue_changed()
