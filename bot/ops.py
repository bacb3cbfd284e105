"""What operators and load balancers ask the Rasa process: /metrics, /health, /health/ready.

Mounted at the root by its own entry in credentials.yml (``bot.ops.OpsInput``):
Rasa puts a channel's routes under ``/webhooks/<url_prefix>``, and a prefix of
``/`` puts them at the root instead (``urljoin``). Also the one place that
makes the Rasa process observable (:func:`install`, called by every channel
when Rasa imports it): turn ids and turn metrics around Rasa's
``Agent.handle_message``, fallbacks from the prediction loop, and the log set-up.

- ``GET /health``: liveness, always 200 while the process serves.
- ``GET /health/ready``: 200 when the model is loaded, the tracker store
  answers and every configured Redis (lock store, channels) answers; else 503
  with the reasons, for a load balancer to stop sending shoppers here.
- ``GET /metrics``: Prometheus text (``METRICS_TOKEN``, when set, as a Bearer
  token). Keep it off the public reverse proxy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import action_calls, logs, metrics
from bot.health import CHECK_TIMEOUT, metrics_response, ready_response, within
from bot.settings import redis_urls
from loyalty import telemetry

logger = logging.getLogger(__name__)
# Threads for blocking database and store calls in the Rasa process (they wait more than they compute).
IO_THREADS = 24
# The turn being handled, for the prediction loop to note its fallbacks in.
_turn: ContextVar[metrics.Turn | None] = ContextVar("turn", default=None)


# ------------------------------------------------------------ hooks around Rasa


def install() -> None:
    """Everything the Rasa process needs before its first message (idempotent)."""
    action_calls.install()
    logs.configure()
    _wrap_rasa()


def _wrap_rasa() -> None:
    from rasa.core.agent import Agent
    from rasa.core.processor import MessageProcessor

    if getattr(Agent.handle_message, "_observed", False):
        return
    handle_message = Agent.handle_message
    prediction_loop = MessageProcessor._run_prediction_loop

    @functools.wraps(handle_message)
    async def observed_handle_message(self: Any, message: UserMessage) -> Any:
        # The channel started the turn; messages from elsewhere (console hand-back) get their own id.
        token = telemetry.turn_id.set(telemetry.turn_id.get() or logs.new_turn_id())
        turn = metrics.Turn(metrics.channel_label(message.input_channel))
        turn_token = _turn.set(turn)
        try:
            return await handle_message(self, message)
        finally:
            turn.done()
            logger.info("turn channel=%s ms=%d fallbacks=%s", turn.channel,
                        (time.perf_counter() - turn.started) * 1000, ",".join(turn.fallbacks) or "-")
            _turn.reset(turn_token)
            telemetry.turn_id.reset(token)

    @functools.wraps(prediction_loop)
    async def observed_prediction_loop(self: Any, output_channel: Any, tracker: Any) -> None:
        await prediction_loop(self, output_channel, tracker)
        turn = _turn.get()
        if turn is not None and metrics.ENABLED:
            turn.fallbacks.extend(metrics.fallbacks_of(list(tracker.events)))

    observed_handle_message._observed = True  # type: ignore[attr-defined]
    Agent.handle_message = observed_handle_message  # type: ignore[method-assign]
    MessageProcessor._run_prediction_loop = observed_prediction_loop  # type: ignore[method-assign]


# ------------------------------------------------------------ readiness


def _select_one(engine: Any) -> None:
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _ping(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()


async def readiness(app: Any, redis: dict[str, str] | None = None) -> dict[str, str]:
    """Each dependency's state: ``ok`` or why not."""
    checks: dict[str, str] = {}
    agent = getattr(app.ctx, "agent", None)
    checks["model"] = "ok" if agent is not None and agent.is_ready() else "no model loaded"
    store = getattr(agent, "tracker_store", None)
    if store is None:
        checks["tracker_store"] = "none"
    else:
        inner = getattr(store, "_tracker_store", store)
        engine = getattr(inner, "engine", None)
        if engine is not None:  # SQL: a round trip, in a thread (the driver blocks)
            checks["tracker_store"] = await within(lambda: asyncio.to_thread(_select_one, engine))
        else:
            checks["tracker_store"] = await within(lambda: store.retrieve("__readiness_probe__"))
    red = getattr(getattr(agent, "lock_store", None), "red", None)
    if red is not None:
        checks["lock_store"] = await within(lambda: asyncio.to_thread(red.ping))
    for label, url in (redis_urls() if redis is None else redis).items():
        checks[f"redis_{label}"] = await within(functools.partial(asyncio.to_thread, _ping, url))
    return checks


def ops_blueprint() -> Blueprint:
    bp = Blueprint("ops")

    @bp.listener("before_server_start")
    async def _logs(*_: Any) -> None:
        logs.configure()  # handlers Sanic or Rasa added after the channels were imported

    @bp.listener("before_server_start")
    async def _threads(*_: Any) -> None:
        # Tracker store and database reads run in the loop's default executor (asyncio.to_thread):
        # its default of 6 threads on 2 cores queued 128 shoppers' reads behind each other's waits.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="io"))

    @bp.listener("after_server_stop")
    async def _close(*_: Any) -> None:
        await action_calls.close_kept_session()

    @bp.get("/health")
    async def health(_: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @bp.get("/health/ready")
    async def ready(request: Request) -> HTTPResponse:
        return ready_response(await readiness(request.app))

    @bp.get("/metrics")
    async def scrape(request: Request) -> HTTPResponse:
        return await metrics_response(request)

    return bp


class OpsInput(InputChannel):
    """Not a channel: mounts /metrics, /health and /health/ready at the root of Rasa's server."""

    @classmethod
    def name(cls) -> str:
        return "ops"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> OpsInput:
        return cls()

    def url_prefix(self) -> str:
        return "/"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return ops_blueprint()


install()
