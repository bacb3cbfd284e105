"""Logs of the Rasa process and the action server: a turn id on every line, no personal data, JSON on demand.

- ``LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``,
  ``logger``, ``msg``, ``turn_id``, ``exc``); plain text stays the default.
- Every line, in either format, goes through :func:`redact`: mobile numbers
  become ``138****5678``, six-digit codes next to a code word ``******``,
  Bearer tokens and ``token=``/``access_token=``/``secret=`` values ``***``.
- The turn id (:data:`loyalty.telemetry.turn_id`) is started by the channel
  (:func:`start_turn`), sent to the action server in the ``X-Turn-Id`` header
  (``bot.action_calls``) and set there again from it (``bot.action_server``);
  the core's log lines inherit it through contextvars.

Rasa, Sanic and rasa_sdk set up their own handlers before our code runs, so
:func:`configure` dresses whatever handlers exist (formatter and filters); it
is called again when the server starts to catch handlers added late.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime, timezone

from bot.settings import log_format
from loyalty import telemetry

TURN_HEADER = "X-Turn-Id"
_TURN_ID = re.compile(r"^[0-9a-f]{8,32}$")

# A mainland mobile number, spaced or not, not inside a longer number or word.
_PHONE = re.compile(r"(?<![0-9A-Za-z])(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?![0-9A-Za-z])")
# A six-digit code shortly after a word that names it (验证码 123456, code: 123456).
_CODE = re.compile(r"((?:验证码|校验码|兑换码|核销码|券码|code|otp|pin)\D{0,16}?)(?<!\d)\d{6}(?!\d)", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}]+", re.IGNORECASE)
# token=…, access_token=…, "secret": "…" in URLs, logged dicts and JSON.
_SECRET_VALUE = re.compile(
    r"((?:access_token|token|secret|password|app_secret)['\"]?\s*[=:]\s*['\"]?)[^\s'\"&,}]+", re.IGNORECASE
)


def redact(text: str) -> str:
    """``text`` without phone numbers, codes and secrets (phones keep 3 + 4 digits to correlate)."""
    text = _PHONE.sub(lambda m: f"{m[1]}****{m[3]}", text)
    text = _CODE.sub(r"\1******", text)
    text = _BEARER.sub(r"\1***", text)
    return _SECRET_VALUE.sub(r"\1***", text)


def new_turn_id() -> str:
    return uuid.uuid4().hex[:16]


def start_turn(turn_id: str | None = None) -> str:
    """Make ``turn_id`` (a new one if None or malformed) the current turn's id; returns it."""
    tid = turn_id if turn_id and _TURN_ID.match(turn_id) else new_turn_id()
    telemetry.turn_id.set(tid)
    return tid


def current_turn() -> str | None:
    return telemetry.turn_id.get()


class RedactFilter(logging.Filter):
    """Masks personal data and secrets in the message and the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log it as it is
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._redacted = True
        return True


class TurnFilter(logging.Filter):
    """Adds ``turn_id`` (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "turn_id"):
            record.turn_id = telemetry.turn_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; newlines inside messages and tracebacks stay escaped."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
            "turn_id": getattr(record, "turn_id", None),
            "pid": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact(record.exc_text)
        return json.dumps(out, ensure_ascii=False, default=str)


_TURN_FILTER = TurnFilter()
_REDACT_FILTER = RedactFilter()
_JSON = JsonFormatter()
_format_as_configured = logging.Handler.format
_mode: str | None = None


def _format(handler: logging.Handler, record: logging.LogRecord) -> str:
    """Every handler's format: turn id and redaction always, then JSON or the handler's own formatter."""
    _TURN_FILTER.filter(record)
    _REDACT_FILTER.filter(record)
    if _mode == "json":
        return _JSON.format(record)
    return redact(_format_as_configured(handler, record))


def configure(fmt: str | None = None) -> None:
    """Make every log handler of this process, present or future, redact, carry the turn id and (json) write JSON.

    Rasa, Sanic, rasa_sdk, jieba and TensorFlow install handlers of their own, some
    at import time, so the formatting is set on ``logging.Handler`` itself rather
    than handler by handler. Idempotent. With ``LOG_FORMAT=json`` warnings become
    records too (they would otherwise print several plain lines).
    """
    global _mode
    _mode = fmt or log_format()
    logging.Handler.format = _format  # type: ignore[method-assign,assignment]
    if _mode == "json":
        logging.captureWarnings(True)
