"""endpoints.prod.yml starts a working assistant: PostgreSQL tracker store, Redis lock store.

The file is used as shipped; only its ${VAR}s are given, pointing at a
throwaway PostgreSQL server (which also holds the loyalty database) and a
throwaway redis-server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select, text

from loyalty import db
from loyalty.conversations.models import Conversation
from loyalty.conversations.service import sender_key
from tests.conftest import _admin
from tests.e2e.conftest import seed_minimal
from tests.support.members import make_member
from tests.support.servers import PgServer, RedisServer, start_redis
from tests.support.stack import ROOT, Stack, require_model, start_stack


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def prod_stack(
    tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer, redis_server: RedisServer
) -> Iterator[Stack]:
    require_model()
    work: Path = tmp_path_factory.mktemp("prod")
    with _admin(pg_server).connect() as c:
        c.execute(text("CREATE DATABASE prod_loyalty TEMPLATE loyalty_template"))
        c.execute(text("CREATE DATABASE prod_tracker"))
    url = f"{pg_server.base_url}/prod_loyalty"
    seed_minimal(url)
    env = {
        "TRACKER_DB_HOST": "127.0.0.1",
        "TRACKER_DB_PORT": str(pg_server.port),
        "TRACKER_DB_NAME": "prod_tracker",
        "TRACKER_DB_USER": "postgres",
        "TRACKER_DB_PASSWORD": "",  # the throwaway server trusts local connections
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_server.port),
    }
    stack = start_stack(work, url, endpoints=ROOT / "endpoints.prod.yml", env_extra=env)
    yield stack
    stack.stop()


def test_production_endpoints_hold_a_conversation(prod_stack: Stack, pg_server: PgServer,
                                                  redis_server: RedisServer) -> None:
    engine = db.make_engine(prod_stack.database_url)
    db.configure(engine)
    visitor = prod_stack.visitor()
    make_member("webchat", f"web-{visitor}", 260)

    assert "你现在有 260 积分" in "\n".join(prod_stack.say(visitor, "我的积分"))
    assert "points" in "\n".join(prod_stack.say(visitor, "how many points do I have")).lower()

    tracker = db.make_engine(f"{pg_server.base_url}/prod_tracker")
    with tracker.connect() as c:
        rows = c.execute(text("SELECT type_name, action_name, data FROM events WHERE sender_id = :s ORDER BY id"),
                         {"s": f"web-{visitor}"}).all()
    tracker.dispose()
    assert "action_show_points" in [r.action_name for r in rows]
    # The conversation broker counted both turns in the core (after each save, so wait for the second).
    seen: Any = None
    for _ in range(100):
        seen = db.run(lambda s: s.execute(select(Conversation.user_turns, Conversation.member_id, Conversation.channel)
                                          .where(Conversation.sender_key == sender_key(f"web-{visitor}"))).first(),
                      readonly=True)
        if seen is not None and seen[0] >= 2:
            break
        time.sleep(0.1)
    assert seen is not None and (seen[0], seen[2]) == (2, "webchat") and seen[1] is not None
    assert any("你现在有 260 积分" in (json.loads(r.data).get("text") or "") for r in rows if r.type_name == "bot")
    # Each turn took the conversation's lock in Redis (a ticket written with SET) and gave it back.
    engine.dispose()
    stats = redis.Redis(port=redis_server.port).info("commandstats")
    assert stats.get("cmdstat_set", {}).get("calls", 0) >= 2, stats
