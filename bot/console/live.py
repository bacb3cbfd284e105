"""Live updates to open consoles: queue snapshots and conversation messages over websockets.

Each process keeps its consoles' sockets. With Redis configured, every update
is published on a channel and each process delivers it to its own sockets,
so a console sees what happens in any Rasa process. Queue snapshots are
coalesced: a burst of changes costs one database read and one push.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bot.pubsub import FanOut

log = logging.getLogger(__name__)
CHANNEL = "console:live"


class Socket(Protocol):
    async def send(self, data: str) -> None: ...


@dataclass
class Client:
    agent_id: int
    role: str


class Live:
    """Console sockets of this process, and the optional Redis fan-out."""

    def __init__(self) -> None:
        self._clients: dict[Socket, Client] = {}
        self._fanout = FanOut(CHANNEL, self.deliver_local)
        self._snapshot: Callable[[], Awaitable[dict[str, Any]]] | None = None
        self._dirty = False
        self._refresher: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- sockets

    def register(self, ws: Socket, agent_id: int, role: str) -> None:
        self._clients[ws] = Client(agent_id, role)

    def unregister(self, ws: Socket) -> None:
        self._clients.pop(ws, None)

    def online(self) -> set[int]:
        """Agents with a console open in this process."""
        return {c.agent_id for c in self._clients.values()}

    async def deliver_local(self, payload: dict[str, Any]) -> int:
        """Send to every console of this process; returns how many got it."""
        data = json.dumps(payload, ensure_ascii=False, default=str)
        sent = 0
        for ws in list(self._clients):
            try:
                await ws.send(data)
                sent += 1
            except Exception:  # a closed socket: its reader loop unregisters it
                log.debug("push to a closed console socket dropped")
        return sent

    async def broadcast(self, payload: dict[str, Any]) -> None:
        """Deliver to every console, in every process when Redis is configured."""
        await self._fanout.publish(payload)

    # ---------------------------------------------------------------- queue snapshots

    def set_snapshot(self, build: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """How to build the queue snapshot pushed after each change."""
        self._snapshot = build

    def queue_changed(self) -> None:
        """Something in the queue changed: push a fresh snapshot soon (bursts coalesce)."""
        self._dirty = True
        if self._snapshot is None or (self._refresher is not None and not self._refresher.done()):
            return
        self._refresher = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while self._dirty and self._snapshot is not None:
            self._dirty = False
            try:
                snap = await self._snapshot()
            except Exception:
                log.exception("console queue snapshot failed")
                return
            await self.broadcast(snap)

    async def settle(self) -> None:
        """Wait for a pending snapshot push (tests, shutdown)."""
        if self._refresher is not None:
            await asyncio.wait({self._refresher})

    # ---------------------------------------------------------------- Redis

    async def start_redis(self, url: str) -> None:
        """Fan updates out through Redis pub/sub (once per process, on start)."""
        await self._fanout.start(url)

    async def stop(self) -> None:
        """Forget this server's sockets and tasks (the process may serve again, as tests do)."""
        if self._refresher is not None and not self._refresher.done():
            self._refresher.cancel()
        self._refresher, self._dirty = None, False
        await self._fanout.stop()
        self._clients.clear()


live = Live()
