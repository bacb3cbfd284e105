"""Deduplicate WeChat's retried callbacks before anything is processed.

WeChat retries a callback (three tries in all) when it gets no answer within
5 seconds. A retry must never run an action twice, so each callback claims its
key atomically first; only the claimant processes it.
"""

from __future__ import annotations

from wechatpy.messages import BaseMessage

from bot.wechat.kv import KeyValueStore, MemoryStore, RedisStore


def dedup_key(message: BaseMessage) -> str:
    """The retry identity of a callback.

    Messages carry a MsgId; events do not, so WeChat's documented identity for
    them is the sender, the creation time and the event name.
    """
    msg_id = message.id
    if msg_id:
        return f"msg:{msg_id}"
    event = str(message._data.get("Event") or message.type).lower()
    return f"evt:{message.source}:{message.time}:{event}"


class CallbackDedup:
    """Claims callback keys in a key-value store for ``ttl`` seconds."""

    def __init__(self, store: KeyValueStore, ttl: float = 600) -> None:
        self._store = store
        self._ttl = ttl

    async def claim(self, key: str) -> bool:
        """True the first time ``key`` is seen within the TTL, False for a retry."""
        return await self._store.add("dedup:" + key, "1", self._ttl)

    async def release(self, key: str) -> None:
        """Forget ``key`` so that a retry is processed (only if nothing ran yet)."""
        await self._store.delete("dedup:" + key)

    async def close(self) -> None:
        """Release the underlying store."""
        await self._store.close()


class MemoryDedup(CallbackDedup):
    """Dedup for a single process."""

    def __init__(self, ttl: float = 600) -> None:
        super().__init__(MemoryStore(), ttl)


class RedisDedup(CallbackDedup):
    """Dedup shared by every process behind the same Redis."""

    def __init__(self, url: str, ttl: float = 600) -> None:
        super().__init__(RedisStore(url), ttl)
