"""One conversational turn under WeChat's 5-second rule.

The assistant gets the shopper's message at once. Whatever it has said when
``passive_wait`` runs out (packed into as few messages as fit) becomes the
passive reply's text; everything else (the overflow, late messages, and the
passive text itself if WeChat hung up before receiving it) follows by
customer-service message once the turn is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage

from bot import logs
from bot.settings import WeChatSettings
from bot.wechat import texts
from bot.wechat.delivery import Delivery, mask
from bot.wechat.inbound import Inbound
from bot.wechat.outbound import TurnCollector
from bot.wechat.shoppers import ShopperState
from bot.wechat.xml import pack_texts

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

# A passive reply that has not been confirmed sent by then is treated as lost.
_DELIVERY_VERDICT_TIMEOUT = 60.0


class TurnRunner:
    """Runs turns and finishes them in the background."""

    def __init__(self, settings: WeChatSettings, state: ShopperState, delivery: Delivery) -> None:
        self._settings = settings
        self._state = state
        self._delivery = delivery
        self._background: set[asyncio.Task[None]] = set()

    async def converse(
        self,
        inbound: Inbound,
        text: str,
        on_new_message: OnNewMessage,
        delivered: asyncio.Future[bool],
    ) -> str | None:
        """Send ``text`` to the assistant; the passive reply's text, or None.

        ``delivered`` is settled by the caller: True once the passive reply was
        handed to WeChat, False if WeChat hung up first.
        """
        collector = TurnCollector()
        # Before the tasks are made: they copy the context, so the late delivery logs carry it too.
        logs.start_turn()
        message = UserMessage(
            text, collector, inbound.openid, input_channel="wechat", metadata=dict(inbound.metadata)
        )
        turn = asyncio.ensure_future(self._run(on_new_message, message, collector))
        offer: asyncio.Future[tuple[str | None, list[str], bool]] = asyncio.get_running_loop().create_future()
        self._spawn(self._finish(turn, collector, inbound.openid, offer, delivered))
        passive: str | None = None
        rest: list[str] = []
        saved = False
        try:
            # asyncio.wait leaves the turn running when the wait times out.
            await asyncio.wait({turn}, timeout=self._settings.passive_wait)
            chunks = pack_texts(collector.take_new(), self._settings.max_text_bytes)
            passive, rest = (chunks[0], chunks[1:]) if chunks else (None, [])
            if turn.done():
                # Saved before replying so that a quick "1" already finds its choices.
                saved = await self._save_choices(inbound.openid, collector)
            return passive
        finally:
            offer.set_result((passive, rest, saved))

    async def _run(
        self, on_new_message: OnNewMessage, message: UserMessage, collector: TurnCollector
    ) -> None:
        try:
            await on_new_message(message)
        except Exception:
            logger.exception("assistant failed on a wechat message openid=%s", mask(message.sender_id))
            collector.texts.append(texts.SOMETHING_WENT_WRONG)

    async def _finish(
        self,
        turn: asyncio.Future[None],
        collector: TurnCollector,
        openid: str,
        offer: asyncio.Future[tuple[str | None, list[str], bool]],
        delivered: asyncio.Future[bool],
    ) -> None:
        """Deliver what the passive reply did not, once the turn is over.

        Waiting for the whole turn packs late and leftover texts together, which
        spends fewer of the few customer-service messages WeChat allows.
        """
        started = time.monotonic()
        passive, rest, saved = await offer
        try:
            went_out = await asyncio.wait_for(asyncio.shield(delivered), _DELIVERY_VERDICT_TIMEOUT)
        except asyncio.TimeoutError:
            went_out = False
        await turn
        if not saved:
            await self._save_choices(openid, collector)
        pending = rest + collector.take_new()
        if passive is not None and not went_out:
            logger.warning(
                "wechat hung up before the passive reply openid=%s; sending it instead", mask(openid)
            )
            pending.insert(0, passive)
        if not pending and not collector.images:
            return
        sent = await self._delivery.send(openid, pending)
        # Images (the member code) follow the texts: a passive reply carries text only.
        for png in collector.images:
            sent += await self._delivery.send_image(openid, png)
        logger.info(
            "wechat cs delivery openid=%s sent=%d waited_ms=%d",
            mask(openid),
            sent,
            (time.monotonic() - started) * 1000,
        )

    async def _save_choices(self, openid: str, collector: TurnCollector) -> bool:
        try:
            await self._state.save_choices(openid, collector.choices)
            return True
        except Exception:  # the answer matters more than its numbered shortcuts
            logger.exception("wechat choices not saved openid=%s", mask(openid))
            return False

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)  # keep a reference, or the task may be collected
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_crash)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the turns still finishing (shutdown, tests)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("wechat background delivery crashed", exc_info=task.exception())
