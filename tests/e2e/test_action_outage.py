"""The action server dead or hung: the shopper gets an apology in time on both channels, then answers again.

Runs the real assistant with the web chat and the WeChat channel (against the
fake WeChat API). Waits are measured from the shopper's side: the web chat's
REST entry returns when the turn is over, WeChat's callback returns the
passive reply.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import DEFAULT_ACTION_TIMEOUT
from bot.wechat.dev.fake_server import create_fake_wechat_app
from bot.wechat.dev.local_server import LocalServer
from loyalty import db
from tests.e2e.conftest import seed_minimal
from tests.support.members import make_member
from tests.support.stack import WECHAT, Stack, require_model, start_stack

APOLOGY_ZH = "系统有点忙，请稍后再试🙏"
APOLOGY_EN = "Our system is busy, please try again in a moment 🙏"
POINTS_ZH = "你现在有 120 积分"
# Web chat: the action timeout plus a little for understanding the message.
WEB_BUDGET = DEFAULT_ACTION_TIMEOUT + 1.5
# WeChat: the apology must be the passive reply, which WeChat waits 5 s for.
WECHAT_BUDGET = 4.5
# After a failed call, calls fail at once for a second (bot.action_calls.RETRY_AFTER).
PAST_RETRY_WINDOW = 1.2


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_model()
    work: Path = tmp_path_factory.mktemp("outage")
    fake = LocalServer(create_fake_wechat_app(WECHAT["WECHAT_APP_ID"], WECHAT["WECHAT_APP_SECRET"],
                                              cs_quota=1000)).start()
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    stack = start_stack(work, url, console=False, wechat_api=fake.url + "/cgi-bin/")
    yield stack
    stack.stop()
    fake.stop()


@pytest.fixture
def shoppers(outage_stack: Stack) -> Iterator[tuple[str, str]]:
    """A member on the web chat and one on WeChat, each with 120 points and a conversation going."""
    engine = db.make_engine(outage_stack.database_url)
    db.configure(engine)
    visitor = outage_stack.visitor()
    openid = "o_outage_" + visitor[:18]
    make_member("webchat", f"web-{visitor}", 120)
    make_member("wechat", openid, 120)
    assert POINTS_ZH in "\n".join(outage_stack.say(visitor, "我的积分"))
    assert POINTS_ZH in (outage_stack.wechat(openid, "我的积分")[0] or "")
    yield visitor, openid
    engine.dispose()


def _web(stack: Stack, visitor: str, text: str) -> tuple[str, float]:
    started = time.monotonic()
    replies = stack.say(visitor, text)
    return "\n".join(replies), time.monotonic() - started


def _wechat(stack: Stack, openid: str, text: str) -> tuple[str, float]:
    started = time.monotonic()
    reply, status = stack.wechat(openid, text)
    assert status == 200
    return reply or "", time.monotonic() - started


def _bot_texts_in_tracker(stack: Stack, sender: str) -> list[str]:
    with sqlite3.connect(stack.workdir / "tracker.db") as c:
        rows = c.execute("SELECT data FROM events WHERE sender_id = ? AND type_name = 'bot' ORDER BY id",
                         (sender,)).fetchall()
    return [json.loads(data).get("text") or "" for (data,) in rows]


def test_dead_action_server_apologises_then_recovers(outage_stack: Stack, shoppers: tuple[str, str]) -> None:
    visitor, openid = shoppers
    outage_stack.kill("actions")
    try:
        web, web_wait = _web(outage_stack, visitor, "我的积分")
        wx, wx_wait = _wechat(outage_stack, openid, "我的积分")
        print(f"\naction server dead: web chat waited {web_wait:.2f} s, WeChat {wx_wait:.2f} s")
        assert web == APOLOGY_ZH and web_wait < WEB_BUDGET
        assert wx == APOLOGY_ZH and wx_wait < WECHAT_BUDGET
        # Said, and kept in the transcript like any bot message.
        assert _bot_texts_in_tracker(outage_stack, f"web-{visitor}")[-1] == APOLOGY_ZH
        assert _bot_texts_in_tracker(outage_stack, openid)[-1] == APOLOGY_ZH
        # What needs no action still works.
        assert "会员小助手" in _web(outage_stack, visitor, "你好")[0]
    finally:
        outage_stack.revive("actions")
    time.sleep(PAST_RETRY_WINDOW)
    assert POINTS_ZH in _web(outage_stack, visitor, "我的积分")[0]
    assert POINTS_ZH in _wechat(outage_stack, openid, "我的积分")[0]


def test_hung_action_server_apologises_in_time_then_recovers(
    outage_stack: Stack, shoppers: tuple[str, str]
) -> None:
    visitor, openid = shoppers
    pid = outage_stack.proc("actions").pid
    os.kill(pid, signal.SIGSTOP)
    try:
        web, web_wait = _web(outage_stack, visitor, "我的积分")
        time.sleep(PAST_RETRY_WINDOW)  # so that WeChat too waits for a call that never returns
        wx, wx_wait = _wechat(outage_stack, openid, "我的积分")
        time.sleep(PAST_RETRY_WINDOW)
        # A shopper new to the bot: the session start and the answer both need the hung server.
        new, new_wait = _wechat(outage_stack, openid + "new", "my points please")
        print(f"\naction server hung: web chat waited {web_wait:.2f} s, WeChat {wx_wait:.2f} s, "
              f"WeChat first message {new_wait:.2f} s")
        assert web == APOLOGY_ZH and web_wait < WEB_BUDGET
        assert wx == APOLOGY_ZH and wx_wait < WECHAT_BUDGET
        assert new == APOLOGY_EN and new_wait < WECHAT_BUDGET
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(PAST_RETRY_WINDOW)
    assert POINTS_ZH in _web(outage_stack, visitor, "我的积分")[0]
    assert POINTS_ZH in _wechat(outage_stack, openid, "我的积分")[0]
