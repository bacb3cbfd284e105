"""A typed SMS code stops at the channel: it is checked here and never reaches Rasa.

Rasa writes every user message into the tracker (and hands it to the event
broker and its debug log) before any action runs, so the code a shopper
types to link their membership must not be sent to Rasa at all. Each channel
passes typed text through :func:`screen` before it builds the ``UserMessage``:

- text that is not just a 6-digit code passes through untouched, without a
  database call (the shape is checked first);
- a 6-digit message while the chat has a recent link challenge is checked
  in the core right here, in one transaction with the challenge row locked
  (tries counted exactly, linking done), and replaced by
  ``/link_code{"link_outcome": ...}``; ``action_link_code_entered`` then reads
  the outcome from the core (never from the message, which a web chat page
  could forge);
- a 6-digit message with no challenge in the last hour is ordinary text.

So the code exists only in the shopper's request and in this process's
memory: not in the tracker, a slot, an event, a log line or an error message.
"""

from __future__ import annotations

import json
import logging

from loyalty import db
from loyalty.identity import otp
from loyalty.identity import service as identity

log = logging.getLogger(__name__)

INTENT = "link_code"


def stand_in(outcome: str) -> str:
    """What Rasa gets instead of the code: ``/link_code{"link_outcome": "…"}``."""
    return f"/{INTENT}" + json.dumps({"link_outcome": outcome}, separators=(",", ":"))


async def screen(channel: str, address: str, text: str) -> str:
    """``text``, or the ``/link_code`` stand-in when it is a code entered for a pending link."""
    if otp.typed_code(text) is None:
        return text
    try:
        attempt = await db.arun(identity.enter_code, channel, address, text)
    except Exception as exc:  # never log the exception itself: its message could quote the text
        log.error("link code check failed channel=%s: %s", channel, type(exc).__name__)
        return stand_in("unavailable")
    if attempt.outcome == "none":
        return text
    log.info("link code entered channel=%s outcome=%s", channel, attempt.outcome)
    return stand_in(attempt.outcome)
