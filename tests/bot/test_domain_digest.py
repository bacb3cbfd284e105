"""The domain goes to the action server by its digest (bot/domain_digest.py), over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from rasa.core.actions import action as rasa_actions
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from sanic import Sanic, response

from bot import action_calls, domain_digest
from bot.wechat.dev.local_server import LocalServer
from tests.support.servers import free_port

YAML = """
version: "3.1"
slots:
  language: {type: text, initial_value: zh, mappings: [{type: custom}]}
actions: [action_show_points]
responses:
  utter_points: [{text: "你有 {points} 积分"}]
"""
ONE = Domain.from_yaml(YAML)
TWO = Domain.from_yaml(YAML.replace("你有", "您有"))


@pytest.fixture(autouse=True)
def _installed() -> None:
    action_calls.install()
    action_calls.outage.until = 0.0


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An action server with the digest middleware; each call notes what crossed and what the action saw."""
    app = Sanic(f"digest_{free_port()}")
    calls: list[dict[str, Any]] = []
    domain_digest.remember_domains(app)

    @app.post("/webhook")
    async def webhook(request: Any) -> response.HTTPResponse:
        calls.append({"sent_domain": "domain" in json.loads(request.body),
                      "seen": request.json.get("domain"), "bytes": len(request.body)})
        return response.json({"events": [{"event": "slot", "name": "language", "value": "zh"}], "responses": []})

    @app.on_response
    async def refused(request: Any, resp: Any) -> None:
        if resp.status == 409:
            calls.append({"refused": True, "sent_domain": "domain" in json.loads(request.body)})

    local = LocalServer(app).start()
    yield local.url + "/webhook", calls
    local.stop()


def _call(url: str, domain: Domain) -> list[Any]:
    action = rasa_actions.action_for_name_or_text("action_show_points", domain, EndpointConfig(url))
    tracker = DialogueStateTracker.from_events("web-d", [ActionExecuted("action_listen"), UserUttered("积分")],
                                               slots=domain.slots)
    nlg = TemplatedNaturalLanguageGenerator(domain.responses)
    return asyncio.run(action.run(CollectingOutputChannel(), nlg, tracker, domain))


def test_the_domain_crosses_once_per_model_and_every_action_sees_it(server: tuple[str, list[dict]]) -> None:
    url, calls = server
    assert _call(url, ONE) == [SlotSet("language", "zh")]
    # Unknown at first: refused without running, sent again whole, kept.
    assert calls[0] == {"refused": True, "sent_domain": False}
    assert calls[1]["sent_domain"] and calls[1]["seen"] == ONE.as_dict()
    for _ in range(3):
        assert _call(url, ONE) == [SlotSet("language", "zh")]
    slim = calls[2:]
    assert all(not c["sent_domain"] and c["seen"] == ONE.as_dict() for c in slim)
    # Another model's domain: once more whole, then by digest; the first is still known.
    assert _call(url, TWO) == [SlotSet("language", "zh")]
    assert calls[5:7] == [{"refused": True, "sent_domain": False}, calls[6]] and calls[6]["seen"] == TWO.as_dict()
    _call(url, ONE)
    assert not calls[-1]["sent_domain"] and calls[-1]["seen"] == ONE.as_dict()
    assert sum(1 for c in calls if c.get("refused")) == 2  # and so no action ran twice


def test_a_domain_that_does_not_match_its_digest_is_not_kept(server: tuple[str, list[dict]]) -> None:
    url, calls = server
    import aiohttp

    async def forged() -> int:
        body = {"next_action": "action_show_points", "tracker": {}, "domain": {"responses": {"utter_x": []}}}
        async with aiohttp.ClientSession() as s, s.post(url, json=body,
                                                        headers={domain_digest.HEADER: domain_digest.digest({})}) as r:
            return r.status

    assert asyncio.run(forged()) == 200  # the call itself runs with the domain it carried
    _call(url, Domain.from_yaml(YAML))
    assert calls[1] == {"refused": True, "sent_domain": False}  # the forged one was not kept under that digest


def test_the_digest_ignores_key_order() -> None:
    assert domain_digest.digest({"a": 1, "b": [1, 2]}) == domain_digest.digest({"b": [1, 2], "a": 1})
    assert domain_digest.digest({"a": 1}) != domain_digest.digest({"a": 2})
