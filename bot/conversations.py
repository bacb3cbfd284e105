"""Feed the core's conversation facts from Rasa's events: turns, fallbacks, handoffs (no text is kept).

A Rasa event broker (see bot/brokers.py). Each shopper message counts as a
turn of the sender's conversation, a fallback when its intent is
``nlu_fallback``; ``pause`` marks the conversation handed to an agent,
``resume`` and ``restart`` hand it back. Button payloads are turns (the
shopper pressed them); external messages (``EXTERNAL...``, ``is_external``)
and the console's own channel are not. Events are recorded in publishing
order by one task, after the save, and a failure never fails the turn.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import AbstractEventLoop
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.shared.core.constants import EXTERNAL_MESSAGE_PREFIX
from rasa.utils.endpoints import EndpointConfig

from loyalty import db
from loyalty.conversations import service

log = logging.getLogger(__name__)
FALLBACK = "nlu_fallback"
NOT_SHOPPERS = ("console",)


def fact(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What an event tells the core: (``turn`` | ``handoff`` | ``handback``, arguments), or None."""
    kind = event.get("event")
    sender = str(event.get("sender_id") or "")
    if not sender:
        return None
    ts = event.get("timestamp")
    at = datetime.fromtimestamp(float(ts), timezone.utc) if ts is not None else datetime.now(timezone.utc)
    if kind == "user":
        text = str(event.get("text") or "")
        meta = event.get("metadata") or {}
        channel = str(event.get("input_channel") or "unknown")
        if text.startswith(EXTERNAL_MESSAGE_PREFIX) or meta.get("is_external") or channel in NOT_SHOPPERS:
            return None
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        return "turn", {"sender_id": sender, "channel": channel, "at": at, "fallback": intent == FALLBACK}
    if kind == "pause":
        return "handoff", {"sender_id": sender, "at": at}
    if kind in ("resume", "restart"):
        return "handback", {"sender_id": sender, "at": at}
    return None


RECORD: dict[str, Callable[..., object]] = {
    "turn": service.record_turn, "handoff": service.record_handoff, "handback": service.record_handback,
}


class ConversationBroker(EventBroker):
    """Writes each conversation fact to the core, one at a time, in the order Rasa published them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> ConversationBroker:
        return cls()

    def publish(self, event: dict[str, Any]) -> None:
        found = fact(event)
        if found is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # published outside the server (e.g. `rasa export`)
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue))
        self._queue.put_nowait(found)

    async def _run(self, queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        while True:
            kind, args = await queue.get()
            try:
                await db.arun(RECORD[kind], **args)
            except Exception as exc:  # never the sender id
                log.warning("conversation %s not recorded: %s", kind, type(exc).__name__)
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every fact published so far is recorded (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        await self.drain()
        if self._worker is not None:
            self._worker.cancel()
