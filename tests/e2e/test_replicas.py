"""Two Rasa replicas on one PostgreSQL tracker store and one Redis: one shopper's messages stay whole.

The production endpoints (endpoints.prod.yml: the bounded SQL tracker store,
the Redis ticket lock store) run in two Rasa processes, each with its own
action server, sharing a throwaway PostgreSQL (loyalty data and tracker
store) and redis-server (locks, web chat fan-out), as behind a load balancer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.webchat.channel import sign
from loyalty import db
from tests.conftest import _admin
from tests.e2e.conftest import seed_minimal
from tests.e2e.handoff_kit import ALWAYS_OPEN, handoff_of, wait_for
from tests.support.console import H, WsClient, agent, console_login
from tests.support.members import make_member
from tests.support.servers import PgServer, RedisServer, start_redis
from tests.support.stack import ROOT, SECRET, Stack, require_model, start_stack


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer, redis_server: RedisServer
) -> Iterator[list[Stack]]:
    require_model()
    work: Path = tmp_path_factory.mktemp("replicas")
    with _admin(pg_server).connect() as c:
        c.execute(text("CREATE DATABASE replicas_loyalty TEMPLATE loyalty_template"))
        c.execute(text("CREATE DATABASE replicas_tracker"))
    url = f"{pg_server.base_url}/replicas_loyalty"
    seed_minimal(url)
    env = {
        "TRACKER_DB_HOST": "127.0.0.1", "TRACKER_DB_PORT": str(pg_server.port),
        "TRACKER_DB_NAME": "replicas_tracker", "TRACKER_DB_USER": "postgres", "TRACKER_DB_PASSWORD": "",
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port),
        "WEBCHAT_REDIS_URL": redis_server.url,
        **ALWAYS_OPEN,
    }
    stacks: list[Stack] = []
    try:
        for name in ("a", "b"):
            (work / name).mkdir()
            stacks.append(start_stack(work / name, url, endpoints=ROOT / "endpoints.prod.yml", env_extra=env))
        for s in stacks:
            s.tracker_url = f"{pg_server.base_url}/replicas_tracker"
        engine = db.make_engine(url)
        db.configure(engine)
        yield stacks
        engine.dispose()
    finally:
        for s in stacks:
            s.stop()


def send_all(replicas: list[Stack], visitor: str, texts: list[str], gap: float) -> list[dict[str, Any]]:
    """Send each text to the replicas in turn, ``gap`` seconds apart, without waiting for answers."""
    replies: list[dict[str, Any]] = [{} for _ in texts]
    ids = [uuid.uuid4().hex for _ in texts]

    def one(i: int) -> None:
        try:
            reply = replicas[i % len(replicas)].post(visitor, texts[i], message_id=ids[i])
        except OSError as exc:  # a replica that is down refuses the connection: not acknowledged
            reply = {"status": 0, "error": type(exc).__name__}
        replies[i] = {**reply, "sent_id": ids[i]}

    threads = []
    for i in range(len(texts)):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(gap)
    for t in threads:
        t.join(120)
    return replies


def turns(stack: Stack, sender: str) -> list[dict[str, Any]]:
    rows = stack.tracker_rows(sender)
    return [dict(r, data=json.loads(r["data"])) for r in rows]


def assert_whole(rows: list[dict[str, Any]], sent: list[str]) -> None:
    """Each sent message once, each answered before the next one starts.

    The order is the order the messages took their place in the conversation's
    queue, on arrival at a replica (bot/lock_store.py). Rasa runs its models on
    the event loop, so a replica in the middle of a turn accepts the messages
    that came meanwhile together, and 50 ms apart two neighbours may swap;
    :func:`test_messages_a_moment_apart_through_two_replicas_keep_the_order_sent`
    checks the order sent where the replicas are not that busy.
    """
    users = [r["data"].get("message_id") for r in rows if r["type_name"] == "user"]
    assert sorted(users) == sorted(sent)  # none lost, none twice
    kinds = [(r["type_name"], r["action_name"]) for r in rows]
    starts = [i for i, (kind, _) in enumerate(kinds) if kind == "user"]
    for here, following in zip(starts, starts[1:] + [len(kinds)], strict=True):
        turn = kinds[here + 1:following]
        # One turn at a time: the bot answered and went back to listening before the next message.
        assert ("bot", None) in turn, turn
        assert turn[-1] == ("action", "action_listen"), turn


def test_one_shoppers_messages_through_two_replicas_are_taken_one_at_a_time_none_lost_none_twice(
    replicas: list[Stack],
) -> None:
    visitor = replicas[0].visitor()
    make_member("webchat", f"web-{visitor}", 120)
    texts = ["我的积分", "how many points do I have", "有什么优惠券", "谢谢"] * 6
    replies = send_all(replicas, visitor, texts, gap=0.05)
    assert [r["status"] for r in replies] == [200] * 24, replies
    assert all(r["type"] == "ack" and r.get("messages") for r in replies)
    assert_whole(turns(replicas[0], f"web-{visitor}"), [r["sent_id"] for r in replies])


def test_messages_a_moment_apart_through_two_replicas_keep_the_order_sent(replicas: list[Stack]) -> None:
    visitor = replicas[0].visitor()
    texts = ["我的积分", "有什么优惠券", "推荐点护肤品", "谢谢", "thanks", "how many points do I have"]
    replies = send_all(replicas, visitor, texts, gap=1.5)
    assert [r["status"] for r in replies] == [200] * len(texts), replies
    sent = [r["sent_id"] for r in replies]
    rows = turns(replicas[0], f"web-{visitor}")
    assert_whole(rows, sent)
    assert [r["data"].get("message_id") for r in rows if r["type_name"] == "user"] == sent


def test_resent_message_through_the_other_replica_counts_once(replicas: list[Stack]) -> None:
    visitor = replicas[0].visitor()
    first = replicas[0].post(visitor, "我的积分", message_id="resent-1")
    again = replicas[1].post(visitor, "我的积分", message_id="resent-1")
    assert first["status"] == again["status"] == 200
    assert again.get("duplicate") is True
    users = [r for r in turns(replicas[0], f"web-{visitor}") if r["type_name"] == "user"]
    assert [u["data"]["message_id"] for u in users] == ["resent-1"]


def test_killing_a_replica_loses_no_acknowledged_message(replicas: list[Stack]) -> None:
    a, b = replicas
    visitor = a.visitor()
    make_member("webchat", f"web-{visitor}", 80)
    texts = ["我的积分", "thanks", "有什么优惠券", "how many points do I have"] * 4
    replies: list[dict[str, Any]] = []
    done = threading.Event()

    def shopper() -> None:
        replies.extend(send_all(replicas, visitor, texts, gap=0.1))
        done.set()

    threading.Thread(target=shopper).start()
    time.sleep(0.6)
    b.kill("rasa")  # mid-conversation: some of its messages in flight, one may hold the lock
    try:
        assert done.wait(180)
        acked = [r["sent_id"] for r in replies if r.get("status") == 200 and r.get("type") == "ack"]
        rows = turns(a, f"web-{visitor}")
        stored = [r["data"].get("message_id") for r in rows if r["type_name"] == "user"]
        assert set(acked) <= set(stored)  # every acknowledged message is in the conversation
        assert len(stored) == len(set(stored))  # and none twice
        # Every message sent to the live replica was answered.
        assert all(replies[i].get("status") == 200 for i in range(0, len(texts), 2))
        # The conversation goes on through the survivor.
        assert a.say(visitor, "我的积分")
    finally:
        b.revive("rasa")


def test_a_page_on_one_replica_gets_the_agents_reply_sent_through_the_other(replicas: list[Stack]) -> None:
    a, b = replicas
    visitor = a.visitor()
    token = sign(visitor, SECRET.encode())
    page = WsClient(f"ws://127.0.0.1:{a.port}/webhooks/webchat/ws?visitor={visitor}&token={token}")
    try:
        page.send({"type": "hello", "last_ts": 0})
        a.say(visitor, "转人工")
        h = wait_for(lambda: handoff_of(f"web-{visitor}"))
        agent("bea", display="Bea")
        http = console_login(b, "bea")
        assert http.post(f"{b.console}/api/handoffs/{h.id}/take", headers=H, timeout=60).status_code == 200
        r = http.post(f"{b.console}/api/handoffs/{h.id}/reply", json={"text": "您好，我是Bea"}, headers=H, timeout=60)
        assert r.status_code == 200
        frame = page.wait(lambda f: f.get("type") == "bot" and f.get("text") == "您好，我是Bea", timeout=30)
        assert frame["agent"] == "Bea"
    finally:
        page.close()
