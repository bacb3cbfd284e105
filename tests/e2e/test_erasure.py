"""Closing an account erases the phone number, name and birthday from the conversation too.

A real conversation against the running assistant: join with all three,
show the member card (which echoes the name and the masked number), then
注销会员 and the confirmation button's payload. Afterwards no event of the
tracker store, on SQLite and on PostgreSQL, holds any of them, and a web
chat page that reconnects from scratch is not shown them again.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from sqlalchemy import select, text

from bot.webchat.channel import sign
from loyalty import db
from loyalty.members.models import Member
from tests.e2e.conftest import seed_minimal
from tests.support.servers import PgServer
from tests.support.stack import SECRET, Stack, start_stack

PHONE = "13700137055"
TYPED_PHONE = "137 0013 7055"
NAME = "王小明"
BIRTHDAY_TYPED = "1990年5月1日"
PERSONAL = [PHONE, TYPED_PHONE, "137****7055", NAME, BIRTHDAY_TYPED, "1990-05-01"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tracker_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shared stack (SQLite tracker store), or one whose tracker store is on PostgreSQL."""
    if request.param == "sqlite":
        yield request.getfixturevalue("_stack")
        return
    from tests.conftest import _admin

    server: PgServer = request.getfixturevalue("pg_server")
    name = f"tracker_{os.getpid()}"
    with _admin(server).connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    work: Path = tmp_path_factory.mktemp("pg-tracker-stack")
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    stack = start_stack(work, url, tracker_url=f"{server.base_url}/{name}")
    yield stack
    stack.stop()
    with _admin(server).connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _joined_then_closed(stack: Stack) -> str:
    """The conversation of the brief; returns the visitor id."""
    v = stack.visitor()
    assert "隐私" in "\n".join(stack.say(v, "我要入会"))
    assert "手机号" in "\n".join(stack.say(v, "同意"))
    stack.say(v, TYPED_PHONE)
    stack.say(v, f"我叫{NAME}")
    assert "入会成功" in "\n".join(stack.say(v, BIRTHDAY_TYPED))
    card = "\n".join(stack.say(v, "会员卡"))
    assert NAME in card and "137****7055" in card  # the bot echoed them: those events need scrubbing too
    confirm = "\n".join(stack.say(v, "注销会员"))
    assert "[确定注销]" in confirm
    assert "账户已注销" in "\n".join(stack.say(v, "/affirm"))  # the 确定注销 button's payload
    return v


def _leftovers(stack: Stack, sender: str | None) -> list[str]:
    found = []
    for row in stack.tracker_rows(sender):
        blob = json.dumps(row, ensure_ascii=False)  # data, intent_name and action_name alike
        found += [f"{row['type_name']}: {value}" for value in PERSONAL if value in blob]
    return found


def test_closed_account_leaves_no_personal_data_in_the_tracker(tracker_stack: Stack) -> None:
    stack = tracker_stack
    engine = db.make_engine(stack.database_url)
    db.configure(engine)
    v = _joined_then_closed(stack)
    sender = f"web-{v}"

    deadline = time.monotonic() + 20  # the scrub runs right after the save, under the conversation's lock
    while _leftovers(stack, sender) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers(stack, sender) == []
    assert _leftovers(stack, None) == []  # nor in anyone else's conversation
    with db.session() as s:
        assert s.execute(select(Member).where(Member.phone == PHONE)).first() is None

    # The conversation goes on from the scrubbed tracker.
    assert stack.say(v, "你好")
    assert _leftovers(stack, sender) == []

    # A fresh page (last_ts 0) gets the history again, without the personal data.
    async def replay() -> list[dict]:
        url = f"ws://127.0.0.1:{stack.port}/webhooks/webchat/ws?visitor={v}&token={sign(v, SECRET.encode())}"
        frames: list[dict] = []
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "hello", "last_ts": 0}))
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 3)))
            except asyncio.TimeoutError:
                return frames

    frames = asyncio.run(replay())
    shown = json.dumps(frames, ensure_ascii=False)
    assert "账户已注销" in shown and "会员卡" in shown  # the history is there…
    assert [value for value in PERSONAL if value in shown] == []  # …without what was erased
    engine.dispose()
