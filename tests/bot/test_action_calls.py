"""bot.action_calls against real sockets: refused, hung and 401 action servers, without a model."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rasa.core.actions import action as rasa_actions
from rasa.core.actions import forms as rasa_forms
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    FollowupAction,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from sanic import Sanic, response

from bot import action_calls
from bot.wechat.dev.local_server import LocalServer
from tests.support.servers import free_port

DOMAIN = Domain.from_yaml("""
version: "3.1"
slots:
  language:
    type: categorical
    values: [zh, en]
    initial_value: zh
    mappings: [{type: custom}]
actions: [action_show_points, action_session_start]
responses:
  utter_service_unavailable:
    - text: "系统有点忙，请稍后再试🙏"
    - condition: [{type: slot, name: language, value: en}]
      text: "Our system is busy, please try again in a moment 🙏"
""")
NLG = TemplatedNaturalLanguageGenerator(DOMAIN.responses)


@pytest.fixture(autouse=True)
def _installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    action_calls.install()
    monkeypatch.setattr(action_calls.GuardedRemoteAction, "timeout", 0.5)
    action_calls.outage.until = 0.0
    yield
    action_calls.outage.until = 0.0


def _tracker(*, language: str = "zh", paused: bool = False) -> DialogueStateTracker:
    events = [ActionExecuted("action_listen"), SlotSet("language", language), UserUttered("我的积分")]
    if paused:
        events.insert(0, ConversationPaused())
    return DialogueStateTracker.from_events("web-abc", events, slots=DOMAIN.slots)


def _run(name: str, url: str, tracker: DialogueStateTracker | None = None) -> tuple[list, CollectingOutputChannel]:
    action = rasa_actions.action_for_name_or_text(name, DOMAIN, EndpointConfig(url))
    out = CollectingOutputChannel()
    events = asyncio.run(action.run(out, NLG, tracker or _tracker(), DOMAIN))
    return events, out


def _texts(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, BotUttered)]


def test_rasa_builds_the_guarded_action_everywhere() -> None:
    assert rasa_actions.RemoteAction is action_calls.GuardedRemoteAction
    assert rasa_forms.RemoteAction is action_calls.GuardedRemoteAction
    action = rasa_actions.action_for_name_or_text("action_show_points", DOMAIN, EndpointConfig("http://x"))
    assert isinstance(action, action_calls.GuardedRemoteAction)


def test_unreachable_server_gets_an_apology_in_the_shoppers_language() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"  # nobody listens
    events, _ = _run("action_show_points", url)
    assert _texts(events) == ["系统有点忙，请稍后再试🙏"]
    assert events[-1] == FollowupAction("action_listen")
    assert action_calls.outage.ongoing()
    action_calls.outage.until = 0.0
    events, _ = _run("action_show_points", url, _tracker(language="en"))
    assert _texts(events) == ["Our system is busy, please try again in a moment 🙏"]


def test_hung_server_times_out_then_calls_fail_at_once() -> None:
    with socket.socket() as hung:  # accepts connections (the kernel does) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        url = f"http://127.0.0.1:{hung.getsockname()[1]}/webhook"
        started = time.monotonic()
        events, _ = _run("action_show_points", url)
        waited = time.monotonic() - started
        assert _texts(events) == ["系统有点忙，请稍后再试🙏"] and 0.4 < waited < 2
        started = time.monotonic()
        events, _ = _run("action_show_points", url)
        assert _texts(events) and time.monotonic() - started < 0.3  # no second wait
    time.sleep(action_calls.RETRY_AFTER)
    assert not action_calls.outage.ongoing()


def test_one_apology_per_turn() -> None:
    tracker = _tracker()
    url = f"http://127.0.0.1:{free_port()}/webhook"
    first, _ = _run("action_show_points", url, tracker)
    tracker.update_with_events(first, DOMAIN)
    second, _ = _run("action_show_points", url, tracker)
    assert _texts(second) == [] and second == [FollowupAction("action_listen")]


@pytest.fixture
def refusing_server() -> Iterator[str]:
    app = Sanic(f"refusing_{free_port()}")

    @app.post("/webhook")
    async def webhook(_: object) -> response.HTTPResponse:
        return response.json({"error": "unauthorized"}, status=401)

    server = LocalServer(app).start()
    yield server.url + "/webhook"
    server.stop()


def test_wrong_token_gets_an_apology_but_is_no_outage(refusing_server: str) -> None:
    events, _ = _run("action_show_points", refusing_server)
    assert _texts(events) == ["系统有点忙，请稍后再试🙏"]
    assert not action_calls.outage.ongoing()


def test_failed_session_start_falls_back_to_rasas_and_stays_paused() -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"
    events, _ = _run("action_session_start", url, _tracker(paused=True))
    assert isinstance(events[0], SessionStarted)
    assert events[-2:] == [ConversationPaused(), ActionExecuted("action_listen")]
    assert not _texts(events)  # the shopper's own message may not need the action server
    action_calls.outage.until = 0.0
    events, _ = _run("action_session_start", url, _tracker())
    assert not any(isinstance(e, ConversationPaused) for e in events)


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    """An action server that answers with a slot and notes the client port of every call."""
    app = Sanic(f"counting_{free_port()}")
    ports: list[str] = []

    @app.post("/webhook")
    async def webhook(request: Any) -> response.HTTPResponse:
        ports.append(str(request.conn_info.client_port))
        return response.json({"events": [{"event": "slot", "name": "language", "value": "zh"}], "responses": []})

    server = LocalServer(app).start()
    yield server.url + "/webhook", ports
    server.stop()


def test_calls_share_a_kept_connection_and_survive_a_closed_one(counting_server: tuple[str, list[str]]) -> None:
    url, ports = counting_server
    action = rasa_actions.action_for_name_or_text("action_show_points", DOMAIN, EndpointConfig(url))

    async def calls() -> list[list[Any]]:
        out = CollectingOutputChannel()
        results = [await action.run(out, NLG, _tracker(), DOMAIN) for _ in range(3)]
        # Idle past KEEPALIVE: the connection is dropped on our side, the next call opens another.
        await asyncio.sleep(action_calls.KEEPALIVE + 1.5)
        results.append(await action.run(out, NLG, _tracker(), DOMAIN))
        await action_calls.close_kept_session()
        return results

    results = asyncio.run(calls())
    assert all(r == [SlotSet("language", "zh")] for r in results)
    assert len(ports) == 4
    assert len(set(ports[:3])) == 1  # one connection for the three calls in a row
    assert ports[3] != ports[0]
