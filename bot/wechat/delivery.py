"""Send texts through the customer-service message API, within WeChat's rules.

Texts are packed into as few messages as fit, each send is counted against
the shopper's quota window, and WeChat's refusals (quota used up, window
closed, shopper unsubscribed, rate limits) are logged and end the delivery
rather than the channel.
"""

from __future__ import annotations

import asyncio
import logging

from bot.wechat import errors
from bot.wechat.client import WeChatApi
from bot.wechat.errors import WeChatApiError
from bot.wechat.shoppers import ShopperState
from bot.wechat.xml import pack_texts

logger = logging.getLogger(__name__)


def mask(openid: str) -> str:
    """An openid shortened for logs: enough to correlate, not to identify."""
    return openid[:4] + "***" + openid[-3:] if len(openid) > 8 else "***"


_REFUSALS = {
    errors.CS_QUOTA_EXCEEDED: "customer-service quota used up",
    errors.RESPONSE_OUT_OF_TIME: "outside the customer-service window",
    errors.UNSUBSCRIBED: "shopper has unfollowed",
    errors.DAILY_API_LIMIT: "daily API quota used up",
    errors.API_FREQ_LIMIT: "API rate limit",
}


class Delivery:
    """Customer-service sending for one official account."""

    def __init__(self, api: WeChatApi | None, state: ShopperState, max_bytes: int) -> None:
        self._api = api
        self._state = state
        self._max_bytes = max_bytes

    async def send(self, openid: str, texts: list[str]) -> int:
        """Send ``texts`` in order; returns how many messages WeChat accepted."""
        chunks = pack_texts([t for t in texts if t.strip()], self._max_bytes)
        if not chunks:
            return 0
        if self._api is None:
            logger.warning(
                "wechat cs send skipped openid=%s messages=%d: WECHAT_APP_ID/WECHAT_APP_SECRET not set",
                mask(openid),
                len(chunks),
            )
            return 0
        sent = 0
        for chunk in chunks:
            if not await self._state.take_quota(openid):
                logger.warning(
                    "wechat cs quota reached openid=%s dropped=%d", mask(openid), len(chunks) - sent
                )
                break
            if not await self._send_one(openid, chunk):
                logger.warning(
                    "wechat cs delivery stopped openid=%s dropped=%d", mask(openid), len(chunks) - sent
                )
                break
            sent += 1
        return sent

    async def send_image(self, openid: str, png: bytes) -> bool:
        """Upload and send one image (a member code) as a customer-service message."""
        if self._api is None:
            logger.warning("wechat image send skipped openid=%s: WECHAT_APP_ID/WECHAT_APP_SECRET not set",
                           mask(openid))
            return False
        if not await self._state.take_quota(openid):
            logger.warning("wechat cs quota reached openid=%s dropped=1 image", mask(openid))
            return False
        try:
            await self._api.send_image(openid, png)
            return True
        except WeChatApiError as exc:
            if exc.errcode == errors.CS_QUOTA_EXCEEDED:
                await self._state.exhaust(openid)
            logger.warning("wechat image refused openid=%s errcode=%s", mask(openid), exc.errcode)
        except Exception:
            logger.exception("wechat image send crashed openid=%s", mask(openid))
        return False

    async def _send_one(self, openid: str, text: str) -> bool:
        for attempt in (1, 2):
            try:
                await self._api.send_text(openid, text)  # type: ignore[union-attr]
                return True
            except WeChatApiError as exc:
                if exc.errcode == errors.SYSTEM_BUSY and attempt == 1:
                    await asyncio.sleep(0.5)  # WeChat asks to retry "system busy"
                    continue
                reason = _REFUSALS.get(exc.errcode or 0)
                if exc.errcode == errors.CS_QUOTA_EXCEEDED:
                    await self._state.exhaust(openid)
                if reason:
                    logger.warning(
                        "wechat cs refused openid=%s errcode=%s: %s", mask(openid), exc.errcode, reason
                    )
                else:
                    logger.error("wechat cs send failed openid=%s %s", mask(openid), exc)
                return False
            except Exception:  # a bug or an unexpected client failure must not kill the task
                logger.exception("wechat cs send crashed openid=%s", mask(openid))
                return False
        return False
