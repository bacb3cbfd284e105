"""Live connections of web chat visitors, so any part of the bot can push to a shopper.

Each process keeps its own sockets; with ``WEBCHAT_REDIS_URL`` set, pushes
are also published on Redis so that the process holding the socket
delivers them (several Rasa processes behind a load balancer).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.pubsub import FanOut

log = logging.getLogger(__name__)
CHANNEL = "webchat:push"


class Socket(Protocol):
    async def send(self, data: str) -> None: ...


class Hub:
    """Visitor id → open sockets in this process, plus an optional Redis fan-out."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[Socket]] = defaultdict(set)
        self._fanout = FanOut(CHANNEL, self._arrived)
        # Called with an inbox message id once an open page got it (outreach: not shown again).
        self.on_inbox_delivered: Callable[[int], Awaitable[None]] | None = None

    async def _arrived(self, item: dict[str, Any]) -> None:
        sent = await self.deliver_local(item["v"], item["p"])
        if sent and item.get("inbox") and self.on_inbox_delivered is not None:
            await self.on_inbox_delivered(int(item["inbox"]))

    def register(self, visitor: str, ws: Socket) -> None:
        self._sockets[visitor].add(ws)

    def unregister(self, visitor: str, ws: Socket) -> None:
        conns = self._sockets.get(visitor)
        if conns is not None:
            conns.discard(ws)
            if not conns:
                del self._sockets[visitor]

    def connected(self, visitor: str) -> bool:
        return bool(self._sockets.get(visitor))

    async def deliver_local(self, visitor: str, payload: dict[str, Any]) -> int:
        """Send to this process's sockets of ``visitor``; returns how many got it."""
        data = json.dumps(payload, ensure_ascii=False)
        sent = 0
        for ws in list(self._sockets.get(visitor, ())):
            try:
                await ws.send(data)
                sent += 1
            except Exception:  # a dead socket: the reader loop will unregister it
                log.debug("push to a closed web chat socket dropped")
        return sent

    async def push(self, visitor: str, payload: dict[str, Any]) -> None:
        """Deliver to the visitor wherever connected. Messages missed here are replayed on reconnect."""
        await self._fanout.publish({"v": visitor, "p": payload})

    async def start_redis(self, url: str) -> None:
        """Fan pushes out through Redis pub/sub (call once per process on start)."""
        await self._fanout.start(url)

    async def stop(self) -> None:
        await self._fanout.stop()


hub = Hub()
