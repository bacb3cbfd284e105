"""Keep the messages the assistant did not understand well, for staff to review (masked, in the core).

A Rasa event broker (see bot/brokers.py): every shopper message is published
with its parse data once its turn is saved. A message is kept when its intent
is ``nlu_fallback`` (the FallbackClassifier, or a confidence gate of
bot/nlu/gate.py: reason ``gated``), or when the bot answered it although its
confidence was below :data:`LOW_CONFIDENCE`. Button payloads ("/ask_points")
and the console's own messages are not kept. The core masks the text before
it is stored (loyalty/nlu_review/service.py); nothing here logs it.
Recording runs in a task after the save and never fails the turn.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import AbstractEventLoop
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.shared.core.constants import EXTERNAL_MESSAGE_PREFIX
from rasa.utils.endpoints import EndpointConfig

from loyalty import db
from loyalty.nlu_review import service

log = logging.getLogger(__name__)

FALLBACK = "nlu_fallback"
# Answered, but below this the bot was guessing: worth a reviewer's look.
LOW_CONFIDENCE = 0.5


def review_row(event: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments of ``service.record`` for a user event worth reviewing, else None."""
    if event.get("event") != "user":
        return None
    text = str(event.get("text") or "").strip()
    meta = event.get("metadata") or {}
    if not text or text.startswith("/") or text.startswith(EXTERNAL_MESSAGE_PREFIX) or meta.get("is_external"):
        return None
    parse = event.get("parse_data") or {}
    intent = parse.get("intent") or {}
    name = intent.get("name")
    ranked = [r for r in parse.get("intent_ranking") or [] if r.get("name") != FALLBACK]
    first = ranked[0] if ranked else {}
    second = ranked[1] if len(ranked) > 1 else {}
    if name == FALLBACK:
        reason = "gated" if parse.get("nlu_gate") else "fallback"
    elif float(intent.get("confidence") or 0.0) < LOW_CONFIDENCE:
        reason = "low_confidence"
    else:
        return None
    language = next((e.get("value") for e in parse.get("entities") or [] if e.get("entity") == "language"), None)
    return {
        "text": text,
        "sender_id": str(event.get("sender_id") or ""),
        "channel": str(event.get("input_channel") or "unknown"),
        "reason": reason,
        "intent": first.get("name"),
        "confidence": float(first.get("confidence") or intent.get("confidence") or 0.0),
        "second_intent": second.get("name"),
        "second_confidence": float(second["confidence"]) if second.get("confidence") is not None else None,
        "language": language,
    }


class ReviewBroker(EventBroker):
    """Records shopper messages worth reviewing in the core's review list."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig, event_loop: AbstractEventLoop | None = None
    ) -> ReviewBroker:
        return cls()

    def publish(self, event: dict[str, Any]) -> None:
        row = review_row(event)
        if row is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # published outside the server (e.g. `rasa export`)
            return
        task = loop.create_task(self._record(row))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, row: dict[str, Any]) -> None:
        try:
            await db.arun(service.record, **row)
        except Exception as exc:  # never the text: it is the shopper's
            log.warning("review message not recorded: %s", type(exc).__name__)

    async def drain(self) -> None:
        """Wait for the recordings started so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        await self.drain()
