"""The Redis ticket lock store holds one conversation across processes, in ticket order, past dead holders.

Real processes against a throwaway redis-server: each runs many turns of the
same conversation at once; inside the lock a turn increments a Redis counter
that must never exceed 1 and appends its ticket to a list that must come out
in ticket order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.lock_store import RedisTicketLockStore, current_ticket
from tests.support.servers import RedisServer, start_redis

ROOT = Path(__file__).resolve().parents[2]

# One process: ``n`` turns of conversation "c" at once, each holding the lock ``hold`` seconds.
TURNS = """
import asyncio, os, sys
import redis
from bot.lock_store import RedisTicketLockStore, current_ticket
url, n, hold, lifetime = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
store = RedisTicketLockStore(url=url, lifetime=lifetime)
r = redis.Redis.from_url(url)

async def turn(i):
    async with store.lock("c"):
        inside = r.incr("inside")
        r.rpush("served", f"{current_ticket()[1]}:{inside}:{os.getpid()}")
        print("holding", flush=True)
        await asyncio.sleep(hold)
        r.decr("inside")

async def main():
    await asyncio.gather(*(turn(i) for i in range(n)))
    await store.close()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield redis_server.url
    client.close()


def spawn(url: str, n: int, hold: float, lifetime: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", TURNS, url, str(n), str(hold), str(lifetime)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)


def served(url: str) -> list[tuple[int, int, int]]:
    rows = redis.Redis.from_url(url).lrange("served", 0, -1)
    return [tuple(int(x) for x in row.decode().split(":")) for row in rows]  # type: ignore[misc]


def test_two_processes_take_turns_one_at_a_time_in_ticket_order(url: str) -> None:
    procs = [spawn(url, 15, 0.01) for _ in range(2)]
    for p in procs:
        assert p.wait(120) == 0
    rows = served(url)
    assert len(rows) == 30  # none lost
    assert [inside for _, inside, _ in rows] == [1] * 30  # never two holders at once
    tickets = [t for t, _, _ in rows]
    assert tickets == sorted(tickets) and len(set(tickets)) == 30  # first come, first served, once each
    assert len({pid for _, _, pid in rows}) == 2  # both processes really took turns


def test_a_killed_holder_is_skipped_after_its_lifetime(url: str) -> None:
    holder = spawn(url, 1, 30, lifetime=1)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    started = time.monotonic()
    waiter = spawn(url, 3, 0.01, lifetime=1)
    assert waiter.wait(60) == 0
    waited = time.monotonic() - started
    rows = served(url)
    assert [t for t, _, _ in rows] == [1, 2, 3, 4]
    assert waited < 30  # not the dead holder's 30 s: its lifetime (1 s) ran out


def test_the_ticket_is_known_inside_and_released_on_error(url: str) -> None:
    store = RedisTicketLockStore(url=url)

    async def go() -> None:
        with pytest.raises(RuntimeError):
            async with store.lock("x"):
                assert current_ticket() == ("x", 1)
                raise RuntimeError("turn failed")
        assert current_ticket() is None
        async with store.lock("x"):  # the failed turn let go
            assert current_ticket() == ("x", 2)
        await store.close()

    asyncio.run(asyncio.wait_for(go(), 10))


def test_endpoint_config_builds_the_url() -> None:
    from rasa.utils.endpoints import EndpointConfig

    store = RedisTicketLockStore(EndpointConfig(url="127.0.0.1", port="6390", db="1", type="x"))
    assert store.url == "redis://127.0.0.1:6390/1"


def test_a_place_taken_on_arrival_keeps_the_order_however_slow_the_way_to_the_lock(url: str) -> None:
    store = RedisTicketLockStore(url=url)
    order: list[str] = []

    async def slow_first() -> None:
        async with store.queue("y"):
            await asyncio.sleep(0.3)  # the replica is slow to reach Rasa's lock
            async with store.lock("y"):
                order.append("first")

    async def quick_second() -> None:
        await asyncio.sleep(0.05)
        async with store.lock("y"):
            order.append("second")

    async def unused_place() -> None:
        async with store.queue("y"):
            pass  # e.g. a duplicate: answered without a turn

    async def go() -> None:
        await asyncio.gather(slow_first(), quick_second())
        await unused_place()
        async with store.lock("y"):  # the place given back does not block the next turn
            order.append("third")
        await store.close()

    asyncio.run(asyncio.wait_for(go(), 10))
    assert order == ["first", "second", "third"]
