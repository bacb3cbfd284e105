"""Rasa input channel for a WeChat official account (公众号).

Mount with ``credentials.yml``::

    bot.channels.wechat.WeChatInput:
      token: ${WECHAT_TOKEN}          # every key may be left out: WECHAT_* env vars fill in

WeChat then calls ``/webhooks/wechat/webhook``. Each callback is verified,
deduplicated before anything runs, classified, and sent to the assistant. The
answer goes back passively if it is ready within ``passive_wait`` seconds;
otherwise WeChat gets ``success`` at once (it retries after 5 s) and the answer
follows through the customer-service message API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Optional

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import parse_message

from bot.settings import WeChatSettings, load_wechat_settings
from bot.wechat import texts
from bot.wechat.client import WeChatApi
from bot.wechat.dedup import CallbackDedup, dedup_key
from bot.wechat.delivery import Delivery, mask
from bot.wechat.inbound import Inbound, classify, neutralise
from bot.wechat.kv import KeyValueStore, open_store
from bot.wechat.outbound import PushOutput, TurnCollector
from bot.wechat.security import CallbackAuth, CallbackRejected, CallbackSecurity
from bot.wechat.shoppers import ShopperState
from bot.wechat.xml import pack_texts, render_text_reply

logger = logging.getLogger(__name__)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]

MAX_BODY_BYTES = 256 * 1024  # WeChat callbacks are a few hundred bytes

# credentials.yml keys that differ from the setting names.
_CREDENTIAL_ALIASES = {"encoding_aes_key": "aes_key", "appid": "app_id", "secret": "app_secret"}


class WeChatInput(InputChannel):
    """The WeChat official-account channel."""

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> "WeChatInput":
        """Build from ``credentials.yml``; missing keys fall back to WECHAT_* env vars."""
        overrides = {_CREDENTIAL_ALIASES.get(k, k): v for k, v in (credentials or {}).items()}
        return cls(load_wechat_settings(**overrides))

    def __init__(
        self,
        settings: WeChatSettings,
        *,
        api: WeChatApi | None = None,
        store: KeyValueStore | None = None,
    ) -> None:
        self.settings = settings
        self.security = CallbackSecurity(settings)
        self.store = store or open_store(settings.redis_url)
        self.dedup = CallbackDedup(self.store, settings.dedup_ttl)
        self.state = ShopperState(self.store, settings)
        self.api = api or (WeChatApi(settings) if settings.can_send else None)
        self.delivery = Delivery(self.api, self.state, settings.max_text_bytes)
        self._background: set[asyncio.Task[None]] = set()

    def get_output_channel(self) -> OutputChannel:
        """Pushes messages with the customer-service API (handoff, reminders)."""
        return PushOutput(self.delivery, self.state)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Routes: ``GET /`` health, ``GET /webhook`` verification, ``POST /webhook`` callbacks."""
        bp = Blueprint("wechat_webhook", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            try:
                echo = self.security.verify_url(_args(request))
            except CallbackRejected as exc:
                logger.warning("wechat verification refused: %s", exc.reason)
                return response.text(exc.reason, status=exc.status)
            return response.text(echo)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_callback(request, on_new_message)

        @bp.listener("before_server_stop")
        async def finish_deliveries(*_: Any) -> None:
            await self.drain(timeout=15)

        return bp

    # ------------------------------------------------------------ callbacks

    async def handle_callback(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """Answer one POST callback from WeChat."""
        started = time.monotonic()
        body = request.body or b""
        if len(body) > MAX_BODY_BYTES:
            return response.text("body too large", status=413)
        try:
            xml, auth = self.security.open_callback(_args(request), body)
            message = parse_message(xml)
            if message is None:
                raise CallbackRejected(400, "empty message")
        except CallbackRejected as exc:
            logger.warning("wechat callback refused status=%d: %s", exc.status, exc.reason)
            return response.text(exc.reason, status=exc.status)
        except Exception:  # malformed XML or fields: the sender's fault, not ours
            logger.warning("wechat callback unreadable", exc_info=True)
            return response.text("bad message", status=400)

        if not await self.dedup.claim(dedup_key(message)):
            logger.info("wechat retry ignored openid=%s", mask(message.source))
            return _success()

        try:
            inbound = classify(message, self.settings.menu_intents)
            reply = await self._respond(inbound, on_new_message)
        except Exception:
            # Claimed already, so a retry would be dropped: answer and log loudly.
            logger.exception("wechat callback failed openid=%s", mask(message.source))
            return _success()
        logger.info(
            "wechat callback openid=%s kind=%s aes=%s passive=%s ms=%d",
            mask(inbound.openid), inbound.label, auth.encrypted, reply is not None,
            (time.monotonic() - started) * 1000,
        )
        if reply is None:
            return _success()
        return self._passive(inbound, reply, auth)

    async def _respond(self, inbound: Inbound, on_new_message: OnNewMessage) -> str | None:
        """The passive reply text, or None to answer ``success``."""
        if inbound.window:
            await self.state.open_window(inbound.openid, inbound.window)
        if inbound.action == "ignore":
            return None
        if inbound.action == "reply":
            return inbound.text
        text = inbound.text
        if inbound.typed:
            text = await self.state.resolve_choice(inbound.openid, text) or neutralise(text)
        return await self._converse(inbound, text, on_new_message)

    async def _converse(self, inbound: Inbound, text: str, on_new_message: OnNewMessage) -> str | None:
        collector = TurnCollector()
        message = UserMessage(
            text, collector, inbound.openid, input_channel=self.name(), metadata=dict(inbound.metadata)
        )
        turn = asyncio.create_task(self._run_turn(on_new_message, message, collector))
        # asyncio.wait leaves the turn running when the wait times out.
        await asyncio.wait({turn}, timeout=self.settings.passive_wait)
        chunks = pack_texts(collector.take_new(), self.settings.max_text_bytes)
        passive, rest = (chunks[0], chunks[1:]) if chunks else (None, [])
        if turn.done() and not rest:
            await self.state.save_choices(inbound.openid, collector.choices)
        else:
            self._spawn(self._finish_turn(turn, collector, inbound.openid, rest))
        return passive

    async def _run_turn(self, on_new_message: OnNewMessage, message: UserMessage, collector: TurnCollector) -> None:
        try:
            await on_new_message(message)
        except Exception:
            logger.exception("assistant failed on a wechat message openid=%s", mask(message.sender_id))
            collector.texts.append(texts.SOMETHING_WENT_WRONG)

    async def _finish_turn(
        self, turn: asyncio.Task[None], collector: TurnCollector, openid: str, rest: list[str]
    ) -> None:
        """Deliver what the passive reply could not carry, once the turn is over.

        Waiting for the whole turn packs late and leftover texts together, which
        spends fewer of the few customer-service messages WeChat allows.
        """
        started = time.monotonic()
        await turn
        await self.state.save_choices(openid, collector.choices)
        sent = await self.delivery.send(openid, rest + collector.take_new())
        logger.info(
            "wechat cs delivery openid=%s sent=%d waited_ms=%d",
            mask(openid), sent, (time.monotonic() - started) * 1000,
        )

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)  # keep a reference, or the task may be collected
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_crash)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for pending customer-service deliveries (shutdown, tests)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)

    def _passive(self, inbound: Inbound, text: str, auth: CallbackAuth) -> HTTPResponse:
        xml = render_text_reply(inbound.openid, inbound.account, text)
        return response.text(self.security.seal_reply(xml, auth), content_type="application/xml")


def _args(request: Request) -> dict[str, str]:
    """First value of each query argument."""
    return {key: values[0] for key, values in request.args.items() if values}


def _success() -> HTTPResponse:
    return response.text("success")


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("wechat background delivery crashed", exc_info=task.exception())
