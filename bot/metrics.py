"""Prometheus metrics of the Rasa process and the action server.

Every instrument is declared here, with its labels, so that the names in
``docs/operations.md`` and ``docs/grafana-dashboard.json`` have one home.
``METRICS_ENABLED=false`` replaces every instrument with a no-op (the bench
``bench/metrics_cost.py`` measures the difference) and ``/metrics`` then says so.

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set (an empty folder per
deployment, needed when Sanic runs several workers: ``SANIC_WORKERS`` for Rasa,
``ACTION_SERVER_SANIC_WORKERS`` for the action server), prometheus-client keeps
the values in files there and :func:`exposition` adds up every worker's. The
gauges say how: the handoff queue is read from the shared database by every
worker, so the most recent reading of a live worker is the answer.

Labels stay few and bounded: channel (webchat, wechat, console, other), action
names from the domain, WeChat outcomes and error codes, outreach journeys.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from bot.settings import metrics_enabled
from loyalty import telemetry

ENABLED = metrics_enabled()

CHANNELS = frozenset({"webchat", "wechat", "console"})
FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTION = "action_default_fallback"


class _Noop:
    """Stands for any instrument when metrics are off: every call does nothing."""

    def labels(self, *_: Any, **__: Any) -> _Noop:
        return self

    def inc(self, amount: float = 1.0) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


NOOP = _Noop()


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
    return Counter(name, doc, labels) if ENABLED else NOOP


def _histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Any:
    return Histogram(name, doc, labels, buckets=buckets) if ENABLED else NOOP


def _gauge(name: str, doc: str) -> Any:
    return Gauge(name, doc, multiprocess_mode="livemostrecent") if ENABLED else NOOP


_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 30.0)
_WAIT = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)

# --- Rasa process
TURNS = _counter("loyalty_bot_turns_total", "Messages the assistant handled, by channel.", ("channel",))
TURN_SECONDS = _histogram("loyalty_bot_turn_seconds", "Time to handle a message (lock wait included), by channel.",
                          ("channel",), _SECONDS)
FALLBACKS = _counter("loyalty_bot_fallbacks_total",
                     "Turns that fell back: kind nlu_fallback (NLU unsure) or action_default_fallback (core unsure).",
                     ("channel", "kind"))
ACTION_CALLS = _counter("loyalty_bot_action_calls_total",
                        "Custom action calls from Rasa by outcome: ok, rejected, timeout, unreachable, error, skipped.",
                        ("action", "outcome"))
ACTION_CALL_SECONDS = _histogram("loyalty_bot_action_call_seconds", "Duration of custom action calls seen by Rasa.",
                                 ("action",), _SECONDS)
WECHAT_CALLBACKS = _counter("loyalty_wechat_callbacks_total",
                            "WeChat callbacks by outcome: passive, customer_service, silent, deduplicated, "
                            "refused, error.", ("outcome",))
WECHAT_API_ERRORS = _counter("loyalty_wechat_api_errors_total",
                             "Failed WeChat API calls by errcode (timeout, transport: no answer).", ("errcode",))
HANDOFF_QUEUE = _gauge("loyalty_handoff_queue_length",
                       "Conversations waiting for an agent (refreshed with the console).")
HANDOFF_OLDEST = _gauge("loyalty_handoff_oldest_wait_seconds", "How long the longest-waiting conversation has waited.")
HANDOFF_WAIT = _histogram("loyalty_handoff_wait_seconds", "Wait from handoff request to an agent taking it.",
                          (), _WAIT)
# --- action server
ACTION_RUNS = _counter("loyalty_actions_runs_total",
                       "Actions run by the action server by outcome: ok, rejected, error.", ("action", "outcome"))
ACTION_RUN_SECONDS = _histogram("loyalty_actions_run_seconds", "Duration of actions on the action server.",
                                ("action",), _SECONDS)
# --- either process, from the core
DB_RETRIES = _counter("loyalty_db_retries_total", "Database transactions retried after a conflict or lock.")
DB_UNAVAILABLE = _counter("loyalty_db_unavailable_total", "Database transactions that found the database unreachable.")
# --- outreach
OUTREACH_SENDS = _counter("loyalty_outreach_sends_total",
                          "Outreach messages by journey and outcome (filled by the outreach engine; none yet).",
                          ("journey", "outcome"))


def channel_label(name: str | None) -> str:
    """A bounded label for an input channel name."""
    return name if name in CHANNELS else "other"


def exposition() -> tuple[bytes, str]:
    """The text a Prometheus scrape gets, and its content type (every worker's sum in multi-process mode)."""
    if not ENABLED:
        return b"# metrics disabled (METRICS_ENABLED=false)\n", CONTENT_TYPE_LATEST
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# ------------------------------------------------------------ the core's events


def _on_core_event(event: str) -> None:
    if event == telemetry.DB_RETRY:
        DB_RETRIES.inc()
    elif event == telemetry.DB_UNAVAILABLE:
        DB_UNAVAILABLE.inc()


if ENABLED:
    telemetry.subscribe(_on_core_event)


# ------------------------------------------------------------ turns in the Rasa process


@dataclass
class Turn:
    """What one turn saw, filled while Rasa handles the message."""

    channel: str
    started: float = field(default_factory=time.perf_counter)
    fallbacks: list[str] = field(default_factory=list)

    def done(self) -> None:
        TURNS.labels(self.channel).inc()
        TURN_SECONDS.labels(self.channel).observe(time.perf_counter() - self.started)
        for kind in self.fallbacks:
            FALLBACKS.labels(self.channel, kind).inc()


def fallbacks_of(events: list[Any]) -> list[str]:
    """The fallbacks in a turn's events (those after the shopper's latest message)."""
    from rasa.shared.core.events import ActionExecuted, UserUttered

    found: list[str] = []
    for event in reversed(events):
        if isinstance(event, ActionExecuted) and event.action_name == FALLBACK_ACTION:
            found.append(FALLBACK_ACTION)
        if isinstance(event, UserUttered):
            if (event.intent or {}).get("name") == FALLBACK_INTENT:
                found.append(FALLBACK_INTENT)
            break
    return found


def action_call(action: str, outcome: str, seconds: float | None = None) -> None:
    """Count one custom action call seen from Rasa (bot.action_calls)."""
    ACTION_CALLS.labels(action, outcome).inc()
    if seconds is not None:
        ACTION_CALL_SECONDS.labels(action).observe(seconds)


def action_run(action: str, outcome: str, seconds: float) -> None:
    """Count one action run by the action server."""
    ACTION_RUNS.labels(action, outcome).inc()
    ACTION_RUN_SECONDS.labels(action).observe(seconds)


def wechat_callback(outcome: str) -> None:
    WECHAT_CALLBACKS.labels(outcome).inc()


def wechat_api_error(errcode: int | str | None) -> None:
    WECHAT_API_ERRORS.labels(str(errcode) if errcode is not None else "transport").inc()


def handoff_queue(length: int, oldest_wait: float) -> None:
    HANDOFF_QUEUE.set(length)
    HANDOFF_OLDEST.set(oldest_wait)


def handoff_taken(wait_seconds: float) -> None:
    HANDOFF_WAIT.observe(max(0.0, wait_seconds))
