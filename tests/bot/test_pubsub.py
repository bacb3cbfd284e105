"""The Redis fan-out: every process delivers a payload once, the publisher at once (before it goes on)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from bot.pubsub import FanOut
from tests.support.servers import RedisServer, start_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_each_process_delivers_once_and_the_publisher_before_publish_returns(redis_server: RedisServer) -> None:
    got: dict[str, list[Any]] = {"a": [], "b": []}

    def sink(name: str) -> Any:
        async def deliver(payload: dict[str, Any]) -> None:
            got[name].append(payload["n"])
        return deliver

    async def go() -> None:
        a, b = FanOut("test:fan", sink("a")), FanOut("test:fan", sink("b"))
        await a.start(redis_server.url)
        await b.start(redis_server.url)
        await asyncio.sleep(0.1)  # both subscribed
        for n in range(5):
            await a.publish({"n": n})
            assert got["a"][-1] == n  # here already: a reply is on its socket before the ack that follows
        await b.publish({"n": 99})
        for _ in range(100):
            if len(got["b"]) == 6 and len(got["a"]) == 6:
                break
            await asyncio.sleep(0.02)
        await a.stop()
        await b.stop()

    asyncio.run(asyncio.wait_for(go(), 10))
    assert got["a"] == [0, 1, 2, 3, 4, 99]
    assert got["b"] == [0, 1, 2, 3, 4, 99]
