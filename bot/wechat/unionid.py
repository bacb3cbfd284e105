"""WeChat UnionIDs: asked of WeChat once a day per shopper and handed to the core.

A brand's official accounts and mini programs bound to one WeChat Open
Platform account see the same person under different openids but one
UnionID. The core stores it on the identity and links a new openid to the
member another of the brand's WeChat identities with the same UnionID
belongs to (loyalty/identity/service.py, ``note_unionid``). Done before the
shopper's message reaches the assistant, so the first message from the
brand's second account is already answered as the member.
"""

from __future__ import annotations

import asyncio
import logging

from bot.wechat.client import WeChatApi
from bot.wechat.delivery import mask
from bot.wechat.errors import WeChatApiError
from bot.wechat.kv import KeyValueStore
from loyalty import db
from loyalty.identity import service as identity

logger = logging.getLogger(__name__)

CHECK_EVERY = 24 * 3600  # seconds between two look-ups of the same shopper
RETRY_AFTER = 600  # after a failed look-up
BUDGET = 1.5  # seconds the look-up may add to a turn (WeChat allows 5 for the whole answer)


class UnionIds:
    """Looks up and records the UnionID of each shopper who writes, at most once a day."""

    def __init__(self, api: WeChatApi | None, store: KeyValueStore) -> None:
        self._api = api
        self._store = store

    async def note(self, openid: str) -> None:
        """Record ``openid``'s UnionID if WeChat has one; never raises, never takes longer than BUDGET."""
        if self._api is None:
            return
        try:
            await asyncio.wait_for(self._note(openid), BUDGET)
        except asyncio.TimeoutError:
            logger.warning("wechat unionid look-up timed out openid=%s", mask(openid))
        except Exception:
            logger.exception("wechat unionid look-up failed openid=%s", mask(openid))

    async def _note(self, openid: str) -> None:
        key = f"union:{openid}"
        if not await self._store.add(key, "-", CHECK_EVERY):
            return
        try:
            info = await self._api.user_info(openid)  # type: ignore[union-attr]
        except WeChatApiError as exc:
            await self._store.put(key, "-", RETRY_AFTER)
            logger.warning("wechat user info refused openid=%s errcode=%s", mask(openid), exc.errcode)
            return
        union_id = info.get("unionid") if isinstance(info, dict) else None
        if not union_id:
            return
        note = await db.arun(identity.note_unionid, openid, str(union_id))
        if note.linked:
            logger.info("wechat openid=%s linked to its member by unionid", mask(openid))
