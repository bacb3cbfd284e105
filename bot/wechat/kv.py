"""A tiny async key-value store with expiry: in memory, or in Redis when shared.

Dedup, numbered choices and customer-service quotas all need "a key that
expires"; one process can keep it in memory, several processes need Redis.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio as aioredis


class KeyValueStore(Protocol):
    """The few operations the channel needs; every key carries a TTL in seconds."""

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """Set ``key`` only if absent; True when this call set it."""

    async def get(self, key: str) -> str | None:
        """The live value of ``key``, or None."""

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Set ``key`` unconditionally."""

    async def delete(self, key: str) -> None:
        """Remove ``key`` if present."""

    async def incr(self, key: str, ttl: float) -> int:
        """Add one to an integer counter; a new counter lives ``ttl`` seconds."""

    async def close(self) -> None:
        """Release connections."""


class MemoryStore:
    """Process-local store; expired keys are dropped lazily and by a periodic sweep."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._max_keys = max_keys
        self._writes = 0

    def _live(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item[0]

    def _set(self, key: str, value: str, ttl: float) -> None:
        self._data[key] = (value, time.monotonic() + ttl)
        self._writes += 1
        if self._writes % 1024 == 0 or len(self._data) > self._max_keys:
            self._sweep()

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
            del self._data[key]
        # Still too big: drop the keys closest to expiry rather than grow forever.
        overflow = len(self._data) - self._max_keys
        if overflow > 0:
            for key, _ in sorted(self._data.items(), key=lambda kv: kv[1][1])[:overflow]:
                del self._data[key]

    async def add(self, key: str, value: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._set(key, value, ttl)
        return True

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def put(self, key: str, value: str, ttl: float) -> None:
        self._set(key, value, ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._set(key, "1", ttl)
            return 1
        value = int(current) + 1
        self._data[key] = (str(value), self._data[key][1])
        return value

    async def close(self) -> None:
        self._data.clear()


class RedisStore:
    """Redis-backed store, shared by every process of the channel."""

    def __init__(self, url: str, prefix: str = "wechat:") -> None:
        self._redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(await self._redis.set(self._k(key), value, nx=True, px=int(ttl * 1000)))

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._k(key))
        return None if value is None else str(value)

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(self._k(key), value, px=int(ttl * 1000))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._k(key))

    async def incr(self, key: str, ttl: float) -> int:
        # Create the counter with its expiry only if absent (keeps an existing
        # window's end), then count; one round trip, works on any Redis version.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._k(key), 0, nx=True, px=int(ttl * 1000))
            pipe.incr(self._k(key))
            _, value = await pipe.execute()
        return int(value)

    async def close(self) -> None:
        await self._redis.close()


def open_store(redis_url: str | None) -> KeyValueStore:
    """A Redis store when a URL is given, else a memory store."""
    return RedisStore(redis_url) if redis_url else MemoryStore()
