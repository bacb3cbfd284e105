"""A Redis lock store that holds one conversation across Rasa processes, first come first served.

Rasa's open-source ``RedisLockStore`` keeps a conversation's tickets in one
Redis value that each process reads, changes and writes back: two replicas
issuing tickets at the same moment overwrite each other, both believe they
hold the conversation, and turns interleave or vanish (RasaHQ/rasa PR 11256;
the fix went to Rasa Pro only). Here every step is one atomic Redis command
or script:

- a ticket is ``INCR <key>:next`` (arrival order at Redis is the order served);
- ``<key>:serving`` names the ticket whose turn it is; a waiter holds the
  conversation once it equals its own ticket;
- each live ticket has ``<key>:alive:<n>`` with a lifetime its owner renews
  while it waits or holds: a process that dies stops renewing, and after the
  lifetime the next waiter moves ``serving`` past the dead ticket (compare and
  set, so two waiters never skip twice);
- release moves ``serving`` on only if it still names the releaser's ticket
  (a holder that lost the lock after its lifetime cannot release another's).

The ticket is the fencing token: :func:`current_ticket` tells code running
under the lock which one it holds. Configure in endpoints.yml::

    lock_store:
      type: bot.lock_store.RedisTicketLockStore
      url: ${REDIS_HOST}
      port: ${REDIS_PORT}
      db: 1
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, LockStore
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)

PREFIX = "convlock:"
POLL_FIRST = 0.002  # seconds between looks at whose turn it is, doubling up to POLL_MAX
POLL_MAX = 0.05
WAIT_LIMIT = 300.0  # a message waits at most this long for its conversation, then fails loudly
# A holder renews its ticket every third of this; a stopped process holds its conversations this long.
DEFAULT_LIFETIME = 10.0

# Issue a ticket and mark it alive in one step.
_ISSUE = """
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2] .. n, '1', 'PX', ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SET', KEYS[3], n) end
-- A conversation's counters go away a day after its last message.
redis.call('PEXPIRE', KEYS[1], 86400000)
redis.call('PEXPIRE', KEYS[3], 86400000)
return n
"""
# Move serving from ARGV[1] to the next ticket, only if it is still ARGV[1].
_ADVANCE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('INCR', KEYS[1])
  redis.call('DEL', KEYS[2] .. ARGV[1])
  return 1
end
return 0
"""

@dataclass
class _Ticket:
    conversation_id: str
    number: int
    keeper: asyncio.Task[None]
    used: bool = False


_queued: contextvars.ContextVar[_Ticket | None] = contextvars.ContextVar("queued_message", default=None)
_held: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar("held_conversation", default=None)


@contextlib.asynccontextmanager
async def queued(lock_store: Any, conversation_id: str) -> AsyncGenerator[None, None]:
    """``lock_store.queue(conversation_id)`` where the lock store has queues; nothing otherwise."""
    queue = getattr(lock_store, "queue", None)
    if queue is None:
        yield
        return
    async with queue(conversation_id):
        yield


def current_ticket() -> tuple[str, int] | None:
    """(conversation id, ticket) held by the running task, if any: the fencing token."""
    return _held.get()


class RedisTicketLockStore(LockStore):
    """Per-conversation ticket locks in Redis, atomic across processes."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, *, url: str | None = None,
                 lifetime: float | None = None) -> None:
        kwargs = dict((endpoint_config.kwargs if endpoint_config else {}) or {})
        if url is None:
            host = (endpoint_config.url if endpoint_config else None) or "localhost"
            port = int(kwargs.get("port") or 6379)
            db = int(kwargs.get("db") or 0)
            password = kwargs.get("password") or None
            auth = f":{password}@" if password else ""
            scheme = "rediss" if str(kwargs.get("use_ssl", "")).lower() == "true" else "redis"
            url = f"{scheme}://{auth}{host}:{port}/{db}"
        self.url = url
        self.prefix = str(kwargs.get("key_prefix") or "") + PREFIX
        self.lifetime = float(lifetime or kwargs.get("lock_lifetime") or DEFAULT_LIFETIME)
        self.aio = aioredis.from_url(url)
        # A blocking client beside it, for the readiness check (bot/ops.py) and Rasa's sync API.
        self.red = redis.Redis.from_url(url)
        self._issue = self.aio.register_script(_ISSUE)
        self._advance = self.aio.register_script(_ADVANCE)

    def _keys(self, conversation_id: str) -> tuple[str, str, str]:
        base = f"{self.prefix}{conversation_id}"
        return f"{base}:next", f"{base}:alive:", f"{base}:serving"

    # Rasa's synchronous TicketLock API is not used by Rasa's processor; answer it from Redis anyway.
    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return None

    def save_lock(self, lock: TicketLock) -> None:  # tickets live in Redis keys of their own
        return None

    def delete_lock(self, conversation_id: str) -> None:
        self.red.delete(*self._keys(conversation_id)[::2])

    async def _take(self, conversation_id: str, lifetime_ms: int) -> _Ticket:
        next_key, alive, serving = self._keys(conversation_id)
        number = int(await self._issue(keys=[next_key, alive, serving], args=[lifetime_ms]))
        keeper = asyncio.get_running_loop().create_task(self._keep_alive(alive + str(number), lifetime_ms))
        return _Ticket(conversation_id, number, keeper)

    async def _give_back(self, ticket: _Ticket) -> None:
        ticket.keeper.cancel()
        _, alive, serving = self._keys(ticket.conversation_id)
        await self._release(serving, alive, ticket.number)

    @contextlib.asynccontextmanager
    async def queue(self, conversation_id: str) -> AsyncGenerator[None, None]:
        """Take this message's place in the conversation's queue now, for the ``lock`` taken later in the task.

        A channel enters this as soon as a message arrives, so the order the
        messages reached any replica is the order they are processed in, however
        long each replica takes to get to Rasa's lock. A place not used by the
        end of the block is given back.
        """
        ticket = await self._take(conversation_id, int(self.lifetime * 1000))
        token = _queued.set(ticket)
        try:
            yield
        finally:
            _queued.reset(token)
            if not ticket.used:
                await self._give_back(ticket)

    @contextlib.asynccontextmanager
    async def lock(  # type: ignore[override]
        self, conversation_id: str, lock_lifetime: float | None = None, wait_time_in_seconds: float = 1,
    ) -> AsyncGenerator[TicketLock, None]:
        """Hold ``conversation_id`` for the body: wait for the tickets issued before this one."""
        lifetime_ms = int((lock_lifetime or self.lifetime) * 1000)
        queued = _queued.get()
        if queued is not None and queued.conversation_id == conversation_id and not queued.used:
            queued.used = True
            ticket = queued
        else:
            ticket = await self._take(conversation_id, lifetime_ms)
        token = None
        try:
            await self._wait(conversation_id, ticket.number, lifetime_ms)
            token = _held.set((conversation_id, ticket.number))
            yield TicketLock(conversation_id)
        finally:
            if token is not None:
                _held.reset(token)
            await self._give_back(ticket)

    async def _keep_alive(self, key: str, lifetime_ms: int) -> None:
        while True:
            await asyncio.sleep(lifetime_ms / 3000)
            try:
                await self.aio.pexpire(key, lifetime_ms)
            except redis.RedisError:
                log.warning("conversation lock not renewed (Redis)")

    async def _wait(self, conversation_id: str, ticket: int, lifetime_ms: int) -> None:
        _, alive, serving = self._keys(conversation_id)
        pause = POLL_FIRST
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            now = await self.aio.get(serving)
            current = int(now) if now is not None else ticket
            if now is None:  # keys expired or deleted while we queued: start from ours
                await self.aio.set(serving, ticket, nx=True)
                continue
            if current == ticket:
                return
            if current > ticket:
                raise LockError(f"conversation lock passed over ticket {ticket}")
            if not await self.aio.exists(alive + str(current)):
                # The ticket being served (or never claimed) belongs to a process that stopped.
                if await self._advance(keys=[serving, alive], args=[current]):
                    log.warning("conversation lock: skipped ticket %d of a stopped process", current)
                continue
            if time.monotonic() > deadline:
                raise LockError(f"gave up waiting for a conversation after {WAIT_LIMIT:.0f} s")
            await asyncio.sleep(pause)
            pause = min(POLL_MAX, pause * 2)

    async def _release(self, serving: str, alive: str, ticket: int) -> None:
        try:
            if not await self._advance(keys=[serving, alive], args=[ticket]):
                # Not our turn (any more): leave ours for the next waiter to skip once it expires.
                await self.aio.delete(alive + str(ticket))
        except redis.RedisError:
            log.exception("conversation lock not released (Redis): the next turn waits for its lifetime")

    async def close(self) -> None:
        await self.aio.close()
        self.red.close()
