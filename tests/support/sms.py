"""The fake SMS gateway (loyalty/sms/dev.py) served on a loopback port, and a handle to read what it got."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot.wechat.dev.local_server import LocalServer
from loyalty import config
from loyalty.sms.dev import create_fake_sms_app

IDENTITY_SECRET = "tests-identity-secret-0123456789"


def shows_code(code: str, text: str) -> bool:
    """Whether ``code`` stands in ``text`` as a number of its own.

    Stored events are full of floats (confidences, timestamps); a six-digit code turns up inside
    their digits about once in a hundred conversations, which is no leak.
    """
    return re.search(rf"(?<![\d.]){re.escape(code)}(?!\d|\.\d)", text) is not None


class FakeSms:
    """Handle on a running fake SMS server."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/"

    def messages(self, phone: str | None = None) -> list[dict[str, Any]]:
        # Filtered here, not by a query parameter: the number must not show up in logged URLs.
        res = requests.get(self.url + "_fake/messages", timeout=5)
        res.raise_for_status()
        return [m for m in res.json()["messages"] if phone in (None, m["phone"])]

    def refused(self) -> int:
        return int(requests.get(self.url + "_fake/messages", timeout=5).json()["refused"])

    def last_code(self, phone: str, timeout: float = 10) -> str:
        """The code of the latest message to ``phone`` (waits for one to arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(phone)
            if found:
                return str(found[-1]["params"]["code"])
            if time.monotonic() > deadline:
                raise AssertionError(f"no SMS to {phone}")
            time.sleep(0.05)

    def fail_next(self, code: str = "isv.BUSINESS_LIMIT_CONTROL", times: int = 1) -> None:
        requests.post(self.url + "_fake/fail", json={"code": code, "times": times}, timeout=5).raise_for_status()

    def reset(self) -> None:
        requests.post(self.url + "_fake/reset", timeout=5).raise_for_status()


@pytest.fixture(scope="session")
def fake_sms_server() -> Iterator[FakeSms]:
    server = LocalServer(create_fake_sms_app()).start()
    yield FakeSms(server.url)
    server.stop()


@pytest.fixture
def fake_sms(fake_sms_server: FakeSms) -> Iterator[FakeSms]:
    """The fake SMS server, emptied, with the core's settings pointing at it."""
    fake_sms_server.reset()
    config.use(identity_settings(fake_sms_server.url))
    yield fake_sms_server


def identity_settings(sms_url: str, **overrides: Any) -> config.Settings:
    """Default settings with a fixed identity secret and the fake SMS gateway at ``sms_url``."""
    return config.Settings(identity_secret=IDENTITY_SECRET,
                           sms=config.SmsSettings(provider="fake", fake_url=sms_url.rstrip("/") + "/"),
                           **overrides)
