"""Fan-out between Rasa processes: a JSON payload published here reaches every process.

With a Redis URL, payloads go through Redis pub/sub and each other process
hands what it hears to its own ``deliver`` callback (its own open sockets).
The publishing process delivers its own at once, not through Redis: a bot
reply then reaches a page on this process before the ``ack`` of the message
it answers, as with a single process. Without Redis there is a single
process. The web chat's visitor sockets and the agent consoles both use it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Deliver = Callable[[dict[str, Any]], Awaitable[Any]]


class FanOut:
    """One pub/sub channel: ``publish`` everywhere, ``deliver`` locally what arrives."""

    def __init__(self, channel: str, deliver: Deliver) -> None:
        self.channel = channel
        self._deliver = deliver
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self.origin = uuid.uuid4().hex  # this process's mark on what it publishes

    async def publish(self, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` in every process: here at once, elsewhere through Redis."""
        if self._redis is not None:
            message = {"o": self.origin, "p": payload}
            await self._redis.publish(self.channel, json.dumps(message, ensure_ascii=False, default=str))
        await self._deliver(payload)

    async def start(self, url: str) -> None:
        """Listen on Redis (once per process, on start)."""
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self.channel)

        async def listen() -> None:
            async for msg in pubsub.listen():
                if msg.get("type") != "message":
                    continue
                try:
                    message = json.loads(msg["data"])
                    if message.get("o") == self.origin:
                        continue  # delivered here when published
                    payload = message["p"]
                except (ValueError, KeyError, AttributeError):
                    log.warning("unreadable message on %s dropped", self.channel)
                    continue
                try:
                    await self._deliver(payload)
                except Exception:  # one bad delivery must not end the listener
                    log.exception("delivery of a %s message failed", self.channel)

        self._listener = asyncio.get_running_loop().create_task(listen())

    async def stop(self) -> None:
        """Stop listening and close Redis (the process may serve again, as tests do)."""
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        if self._redis is not None:
            await self._redis.close()
        self._redis = None
