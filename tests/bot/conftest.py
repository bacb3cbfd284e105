"""Fixtures for the bot tests: the fake WeChat API, a served channel, Redis.

The channel runs in a real Sanic server on a loopback port; WeChat's side is
played with real signatures and AES encryption (bot.wechat.dev.simulate). The
assistant is a scripted stand-in that answers through the output channel it
is given, as Rasa's agent does; end-to-end tests with the trained model live
elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from bot.settings import load_wechat_settings
from bot.wechat.channel import WeChatInput
from bot.wechat.dev.fake_server import create_fake_wechat_app
from bot.wechat.dev.local_server import LocalServer
from bot.wechat.dev.simulate import Reply, WeChatSide
from bot.wechat.kv import KeyValueStore
from tests.support.servers import start_redis

APP_ID = "wx1234567890abcdef"
APP_SECRET = "test-secret"
TOKEN = "test-token"
AES_KEY = base64.b64encode(bytes(range(32))).decode()[:-1]  # a fixed 43-char EncodingAESKey


@dataclass
class Call:
    """One message the assistant received."""

    text: str
    sender_id: str
    metadata: dict[str, Any] | None
    input_channel: str | None


def echo(message: UserMessage) -> list[dict[str, Any]]:
    """Default script: answer with what was understood."""
    return [{"text": f"收到：{message.text}"}]


@dataclass
class ScriptedAssistant:
    """Stands in for Rasa's agent: records each message, then answers via the output channel."""

    script: Callable[[UserMessage], list[dict[str, Any]]] = echo
    delay: float = 0.0
    # Seconds to pause before each message after the first (a turn that keeps talking).
    gap: float = 0.0
    fail: bool = False
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, message: UserMessage) -> None:
        self.calls.append(
            Call(message.text or "", message.sender_id, message.metadata, message.input_channel)
        )
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("assistant exploded")
        for i, reply in enumerate(self.script(message)):
            if i and self.gap:
                await asyncio.sleep(self.gap)
            await message.output_channel.send_response(message.sender_id, dict(reply))


class FakeApi:
    """Handle on the fake WeChat API server."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.base = server.url
        self.api_base_url = server.url + "/cgi-bin/"

    def reset(self) -> None:
        requests.post(self.base + "/_fake/reset", timeout=5).raise_for_status()

    def messages(self, openid: str) -> list[str]:
        res = requests.get(self.base + "/_fake/messages", params={"touser": openid}, timeout=5)
        return [m["text"]["content"] for m in res.json()["messages"]]

    def wait_messages(self, openid: str, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(openid)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        return self.messages(openid)

    def fail_next(self, errcode: int, path: str = "message/custom/send", times: int = 1) -> None:
        spec: dict[str, Any] = {"path": path, "errcode": errcode, "times": times}
        requests.post(self.base + "/_fake/fail", json=spec, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return requests.get(self.base + "/_fake/stats", timeout=5).json()

    def set_delay(self, seconds: float) -> None:
        requests.post(self.base + "/_fake/delay", json={"seconds": seconds}, timeout=5).raise_for_status()

    def expire_tokens(self) -> None:
        requests.post(self.base + "/_fake/expire_tokens", timeout=5).raise_for_status()


@pytest.fixture(scope="session")
def fake_api() -> Iterator[FakeApi]:
    """The fake WeChat API server, shared by the session (reset per channel)."""
    server = LocalServer(create_fake_wechat_app(APP_ID, APP_SECRET, cs_quota=1000)).start()
    yield FakeApi(server)
    server.stop()


class ChannelHarness:
    """A WeChatInput served on a loopback port, with WeChat's side to talk to it."""

    def __init__(self, channel: WeChatInput, assistant: ScriptedAssistant) -> None:
        self.channel = channel
        self.assistant = assistant
        app = Sanic(f"channel_{uuid.uuid4().hex[:8]}")
        app.blueprint(channel.blueprint(assistant), url_prefix="/webhooks/wechat")
        self.server = LocalServer(app).start()
        self.url = self.server.url + "/webhooks/wechat/webhook"
        self.side = WeChatSide(TOKEN, APP_ID, AES_KEY)

    def post(self, xml: str, *, aes: bool = False, **sign: Any) -> requests.Response:
        params, body = self.side.sign(xml, aes=aes, **sign)
        return requests.post(self.url, params=params, data=body, timeout=10)

    def send(self, xml: str, *, aes: bool = False) -> Reply:
        res = self.post(xml, aes=aes)
        assert res.status_code == 200, res.text
        return self.side.open_reply(res.text)

    def drain(self) -> None:
        """Wait until background customer-service deliveries are done."""
        self.server.call(self.channel.drain(timeout=20))

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def make_channel(fake_api: FakeApi) -> Iterator[Callable[..., ChannelHarness]]:
    """Factory: ``make_channel(passive_wait=0.5)`` serves a fresh channel."""
    fake_api.reset()
    started: list[ChannelHarness] = []

    def make(
        assistant: ScriptedAssistant | None = None,
        *,
        with_api: bool = True,
        store: KeyValueStore | None = None,
        **overrides: Any,
    ) -> ChannelHarness:
        values: dict[str, Any] = {
            "token": TOKEN,
            "app_id": APP_ID,
            "app_secret": APP_SECRET if with_api else "",
            "aes_key": AES_KEY,
            "api_base_url": fake_api.api_base_url,
            "passive_wait": 1.0,
            "http_timeout": 2.0,
            "menu_intents": {"MENU_POINTS": "ask_points"},
        }
        values.update(overrides)
        settings = load_wechat_settings({}, **values)
        harness = ChannelHarness(WeChatInput(settings, store=store), assistant or ScriptedAssistant())
        started.append(harness)
        return harness

    yield make
    for harness in started:
        harness.stop()


def new_openid() -> str:
    """A fresh shopper for each test, so state never leaks between tests."""
    return "o" + uuid.uuid4().hex[:27]


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a loopback port (skipped locally if absent, fails in CI)."""
    server = start_redis()
    yield server.url
    server.stop()
