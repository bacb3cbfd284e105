"""How the Rasa server calls the action server: a time limit, and an apology instead of silence.

Rasa 3.6 waits up to five minutes for a custom action, holding the
conversation's lock all the while (a shopper's next message then waits 60 s
for the lock to expire, and runs beside the stuck one). When the call fails
-- server down, refused, 5xx -- Rasa logs the error, drops the action's
events and carries on: the shopper hears nothing.

:class:`GuardedRemoteAction` is a ``RemoteAction`` that:

- gives each call ``ACTION_SERVER_TIMEOUT`` seconds (3 by default);
- turns any failure into ``utter_service_unavailable`` rendered by Rasa's
  NLG in the shopper's language. The ``BotUttered`` is returned as the
  action's event, so Rasa sends it through the turn's output channel and
  stores it in the tracker like any other bot message; then the bot
  listens. One apology per turn: an action that fails after one already
  apologised stays quiet;
- replaces a failed ``action_session_start`` with Rasa's built-in session
  start (keeping a paused conversation paused), so a new session still
  starts and answers that need no action (a greeting, help) still work;
- after a timeout or an unreachable server, fails at once for the next
  second instead of waiting again: a turn that runs two actions (session
  start, then the answer) pays the timeout once. The second is short, so
  the first message after the server is back gets a normal answer.

A rejection (``ActionExecutionRejection``, the action server's 400) is not a
failure: forms rely on it, so it passes through.

Connections: Rasa opens a new HTTP session, and so a new TCP connection, for
every call, and closes it after (``EndpointConfig.request``): connecting was
a tenth of the Rasa process's busy time under load (docs/scaling.md).
Calls here share one kept-alive session per event loop (:func:`kept_session`).
Idle connections are dropped after :data:`KEEPALIVE` seconds, before the action
server's own keep-alive limit (Sanic's 5 s) closes them from its side.

Mechanism: Rasa builds every remote action by calling the name
``RemoteAction`` in ``rasa.core.actions.action`` (the action factory and slot
extraction) and ``rasa.core.actions.forms`` (form validation).
:func:`install` points those two names at the subclass; Rasa's code is
otherwise untouched and ``isinstance(x, RemoteAction)`` still holds. Rasa has
no registry for action classes, and swapping the agent's ``EndpointConfig``
would have to follow every model (re)load. The channels call
:func:`install` when Rasa imports them, which is before any message.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import rasa.core.actions.action as rasa_actions
import rasa.core.actions.forms as rasa_forms
from rasa.core.actions.action import ActionExecutionRejection, ActionSessionStart, RemoteAction
from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import BotUttered, ConversationPaused, Event, FollowupAction, UserUttered

from bot import domain_digest, metrics
from bot.logs import TURN_HEADER, current_turn
from bot.settings import DEFAULT_ACTION_TIMEOUT, load_action_server_settings

if TYPE_CHECKING:
    from rasa.core.channels.channel import OutputChannel
    from rasa.core.nlg import NaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

APOLOGY = "utter_service_unavailable"
# Seconds during which calls fail at once after the server could not be reached.
RETRY_AFTER = 1.0
# Seconds an idle connection to the action server is kept (below its own limit of 5 s).
KEEPALIVE = 3.0
# Connections to the action server at most, per Rasa process (more calls wait for one).
CONNECTIONS = 100

_sessions: dict[int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession]] = {}


class _Borrowed:
    """``async with`` around a kept session that, unlike a session's own, does not close it."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self.session

    async def __aexit__(self, *_: object) -> None:
        return None


def kept_session() -> _Borrowed:
    """The running event loop's session to the action server (created on first use)."""
    loop = asyncio.get_running_loop()
    kept = _sessions.get(id(loop))
    if kept is None or kept[0] is not loop or kept[1].closed:
        for key, (old_loop, _) in list(_sessions.items()):
            if old_loop.is_closed():  # a loop that has ended (tests run many) takes its session along
                del _sessions[key]
        connector = aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=KEEPALIVE)
        kept = _sessions[id(loop)] = (loop, aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT)))
    return _Borrowed(kept[1])


class _Outage:
    """When the action server was last found unreachable or hung (one per Rasa process)."""

    def __init__(self) -> None:
        self.until = 0.0

    def begin(self) -> None:
        self.until = time.monotonic() + RETRY_AFTER

    def ongoing(self) -> bool:
        return time.monotonic() < self.until


outage = _Outage()


def _unreachable(exc: BaseException) -> bool:
    """Whether a failure means the server could not be reached (Rasa re-raises those without a cause)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientConnectionError | asyncio.TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def apologised_this_turn(tracker: DialogueStateTracker) -> bool:
    """Whether the apology was already said since the shopper's latest message."""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return False
        if isinstance(event, BotUttered) and event.metadata.get("utter_action") == APOLOGY:
            return True
    return False


class GuardedRemoteAction(RemoteAction):
    """A remote action with a time limit that answers with an apology when the call fails."""

    # Set from ACTION_SERVER_TIMEOUT by install().
    timeout: float = DEFAULT_ACTION_TIMEOUT

    async def run(
        self,
        output_channel: OutputChannel,
        nlg: NaturalLanguageGenerator,
        tracker: DialogueStateTracker,
        domain: Domain,
    ) -> list[Event]:
        """Run the action on the action server; on failure, the fallback events."""
        name = self.name()
        if outage.ongoing():
            metrics.action_call(name, "skipped")
            logger.warning("action %s not called: the action server was unreachable a moment ago", name)
            return await self._fallback(output_channel, nlg, tracker, domain)
        self._prepare_endpoint()
        started = time.monotonic()
        try:
            events = await asyncio.wait_for(super().run(output_channel, nlg, tracker, domain), self.timeout)
        except ActionExecutionRejection:
            metrics.action_call(name, "rejected", time.monotonic() - started)
            raise
        except Exception as exc:
            unreachable = _unreachable(exc)
            if unreachable:
                outage.begin()
            outcome = "timeout" if isinstance(exc, asyncio.TimeoutError) else "unreachable" if unreachable else "error"
            metrics.action_call(name, outcome, time.monotonic() - started)
            logger.error(
                "action %s failed after %.1f s (%s): %s", name, time.monotonic() - started,
                "unreachable or too slow" if unreachable else "error", _describe(exc),
            )
        else:
            metrics.action_call(name, "ok", time.monotonic() - started)
            return events
        return await self._fallback(output_channel, nlg, tracker, domain)

    def _prepare_endpoint(self) -> None:
        """This call's endpoint: the kept session, the domain by its digest, and the turn's id
        (header ``X-Turn-Id``) for the action server's logs.

        Rasa builds a remote action per call but shares its endpoint, so both go on a
        copy of the endpoint of this call only.
        """
        shared: Any = getattr(self, "action_endpoint", None)
        if shared is None:
            return
        endpoint = copy.copy(shared)
        turn = current_turn()
        if turn:
            endpoint.headers = {**(endpoint.headers or {}), TURN_HEADER: turn}
        if not getattr(endpoint, "basic_auth", None):  # Rasa's own session carries basic auth
            endpoint.session = kept_session
        # The domain goes by its digest (bot/domain_digest.py).
        endpoint.request = functools.partial(domain_digest.slim_request, endpoint, endpoint.request)
        self.action_endpoint = endpoint

    async def _fallback(
        self,
        output_channel: OutputChannel,
        nlg: NaturalLanguageGenerator,
        tracker: DialogueStateTracker,
        domain: Domain,
    ) -> list[Event]:
        if self.name() == ACTION_SESSION_START_NAME:
            return await _plain_session_start(output_channel, nlg, tracker, domain)
        # Then listen: predicting on as if the action had done its job only
        # adds a confused "I'm not sure how to go on" after the apology.
        listen: list[Event] = [FollowupAction(ACTION_LISTEN_NAME)]
        if apologised_this_turn(tracker):
            return listen
        apology = await self._utter_responses([{"response": APOLOGY}], output_channel, nlg, tracker)
        return [*apology, *listen]


async def _plain_session_start(
    output_channel: OutputChannel,
    nlg: NaturalLanguageGenerator,
    tracker: DialogueStateTracker,
    domain: Domain,
) -> list[Event]:
    """Rasa's own session start; a conversation with an agent stays paused (ours would keep it so)."""
    events: list[Event] = await ActionSessionStart().run(output_channel, nlg, tracker, domain)
    if tracker.is_paused():
        events.insert(len(events) - 1, ConversationPaused())  # before the closing action_listen
    return events


def _describe(exc: BaseException) -> str:
    """The failure without the response body (which may echo the tracker: personal data)."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    cause: Any = exc.__cause__
    status = getattr(cause, "status", None)
    if status == 401:
        return "HTTP 401: Rasa and the action server do not share ACTION_SERVER_TOKEN"
    if status is not None:
        return f"HTTP {status}"
    return type(exc).__name__


def install() -> None:
    """Make Rasa build :class:`GuardedRemoteAction` wherever it builds a remote action (idempotent)."""
    GuardedRemoteAction.timeout = load_action_server_settings().timeout
    for module in (rasa_actions, rasa_forms):
        module.RemoteAction = GuardedRemoteAction  # type: ignore[misc]


async def close_kept_session() -> None:
    """Close the running loop's session to the action server (as the Rasa server stops)."""
    kept = _sessions.pop(id(asyncio.get_running_loop()), None)
    if kept is not None:
        await kept[1].close()
