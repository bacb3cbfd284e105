"""What the core tells whoever watches it: the current turn's id and a few operational events.

The core imports no metrics or logging library of the bot. The bot registers a
listener (``bot.metrics``) and a logging filter (``bot.logs``) that read these;
without them, nothing happens and nothing is paid but a list lookup.

- :data:`turn_id` is the id of the conversational turn being served, set by the
  channel (Rasa process) or from the action request (action server). It follows
  ``asyncio`` tasks and ``asyncio.to_thread`` on its own (contextvars), so
  ``loyalty.db`` log lines carry it too.
- :func:`notify` reports an event by name (``db_retry``, ``db_unavailable``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

log = logging.getLogger(__name__)

turn_id: ContextVar[str | None] = ContextVar("turn_id", default=None)

DB_RETRY = "db_retry"
DB_UNAVAILABLE = "db_unavailable"

Listener = Callable[[str], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Call ``listener(event)`` for every event from now on (idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def notify(event: str) -> None:
    """Tell the listeners; a failing listener is logged, never raised into the core."""
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:
            log.exception("telemetry listener failed on %s", event)
