"""Rasa input channel for a WeChat official account (公众号).

Mount with ``credentials.yml``::

    bot.wechat.channel.WeChatInput:
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
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import parse_message
from wechatpy.messages import BaseMessage

from bot import linking, metrics, ops
from bot.settings import WeChatSettings, load_wechat_settings
from bot.wechat.client import WeChatApi
from bot.wechat.dedup import CallbackDedup, dedup_key
from bot.wechat.delivery import Delivery, mask
from bot.wechat.inbound import Inbound, classify, neutralise
from bot.wechat.kv import KeyValueStore, open_store
from bot.wechat.outbound import PushOutput
from bot.wechat.security import CallbackAuth, CallbackRejected, CallbackSecurity
from bot.wechat.shoppers import ShopperState
from bot.wechat.turns import OnNewMessage, TurnRunner
from bot.wechat.unionid import UnionIds
from bot.wechat.xml import render_text_reply
from loyalty import db
from loyalty.outreach import service as outreach

logger = logging.getLogger(__name__)
# Rasa imports the channels before the first message: apologise instead of going silent,
# count and log every turn (bot/ops.py).
ops.install()

# WeChat callbacks are a few hundred bytes. The cap still admits a 100 KB text in
# AES mode (~140 KB) so that its sender gets the polite "too long" answer; larger
# bodies are refused unread.
MAX_BODY_BYTES = 256 * 1024

# credentials.yml keys that differ from the setting names.
_CREDENTIAL_ALIASES = {"encoding_aes_key": "aes_key", "appid": "app_id", "secret": "app_secret"}


class WeChatInput(InputChannel):
    """The WeChat official-account channel."""

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatInput:
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
        self.turns = TurnRunner(settings, self.state, self.delivery)
        self.unions = UnionIds(self.api, self.store)

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

        # Streamed: the size and the URL's signature are checked before the body is read.
        @bp.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_callback(request, on_new_message)

        @bp.listener("before_server_stop")
        async def finish_deliveries(*_: Any) -> None:
            await self.drain(timeout=15)

        @bp.listener("after_server_stop")
        async def release_resources(*_: Any) -> None:
            if self.api is not None:
                self.api.close()
            await self.store.close()

        return bp

    # ------------------------------------------------------------ callbacks

    async def handle_callback(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """Answer one POST callback from WeChat."""
        started = time.monotonic()
        args = _args(request)
        try:
            # Cheapest first: the declared size, then the URL's signature, then the body
            # (read with a cap), and only then XML parsing and decryption.
            if _declared_length(request) > MAX_BODY_BYTES:
                raise CallbackRejected(413, "body too large")
            self.security.verify_request(args)
            body = await _read_body(request, MAX_BODY_BYTES)
            xml, auth = self.security.open_callback(args, body)
            message = parse_message(xml)
            if message is None:
                raise CallbackRejected(400, "empty message")
        except CallbackRejected as exc:
            metrics.wechat_callback("refused")
            logger.warning("wechat callback refused status=%d: %s", exc.status, exc.reason)
            return response.text(exc.reason, status=exc.status)
        except Exception:  # malformed XML or fields: the sender's fault, not ours
            metrics.wechat_callback("refused")
            logger.warning("wechat callback unreadable", exc_info=True)
            return response.text("bad message", status=400)

        # The work runs shielded: if WeChat hangs up (Sanic then cancels this
        # handler), the turn still completes and its answer goes by
        # customer-service message instead of being lost with the connection.
        delivered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        work = asyncio.ensure_future(self._process(message, auth, on_new_message, delivered))
        try:
            reply, outcome = await asyncio.shield(work)
        except BaseException:
            _settle(delivered, False)
            raise
        _settle(delivered, True)
        metrics.wechat_callback(outcome)
        logger.info(
            "wechat callback openid=%s status=%d ms=%d",
            mask(message.source),
            reply.status,
            (time.monotonic() - started) * 1000,
        )
        return reply

    async def _process(
        self,
        message: BaseMessage,
        auth: CallbackAuth,
        on_new_message: OnNewMessage,
        delivered: asyncio.Future[bool],
    ) -> tuple[HTTPResponse, str]:
        """The answer to WeChat and its outcome (the label of ``loyalty_wechat_callbacks_total``)."""
        key = dedup_key(message)
        try:
            first = await self.dedup.claim(key)
        except Exception:
            # Without dedup a retry could run an action twice: refuse, and let
            # WeChat's own retries try again once the store is back.
            logger.exception("wechat dedup store unavailable; callback refused for now")
            return response.text("dedup store unavailable", status=503), "error"
        if not first:
            logger.info("wechat retry ignored openid=%s", mask(message.source))
            return _success(), "deduplicated"

        try:
            inbound = classify(message, self.settings.menu_intents, self.settings.max_text_chars)
            text = await self._prepare(inbound, key)
        except Exception:
            # Nothing has run yet: give the claim back so WeChat's retry is processed.
            logger.exception("wechat callback not processed openid=%s", mask(message.source))
            await self._release(key)
            return response.text("try again", status=503), "error"

        if inbound.action == "reply":
            reply: str | None = inbound.text
        elif text is None:
            reply = None
        else:
            reply = await self.turns.converse(inbound, text, on_new_message, delivered)
        logger.debug(
            "wechat callback kind=%s aes=%s passive=%s", inbound.label, auth.encrypted, reply is not None
        )
        if reply is None:
            # The assistant's answer (if any) follows by customer-service message.
            return _success(), "silent" if text is None else "customer_service"
        xml = render_text_reply(inbound.openid, inbound.account, reply)
        return response.text(self.security.seal_reply(xml, auth), content_type="application/xml"), "passive"

    async def _prepare(self, inbound: Inbound, key: str) -> str | None:
        """Record the interaction; the text for the assistant, or None if it is not asked."""
        if inbound.window:
            await self.state.open_window(inbound.openid, inbound.window)
        if inbound.accepted:
            # Keyed by the callback's identity too, so a retry that outlives the dedup store grants nothing twice.
            granted = await db.arun(outreach.record_subscription, inbound.openid, list(inbound.accepted),
                                    key=f"wechat:{key}", now=inbound.occurred_at)
            logger.info("wechat subscription credits openid=%s accepted=%d granted=%d",
                        mask(inbound.openid), len(inbound.accepted), granted)
        if inbound.refused:
            # Only credits granted before the shopper acted: a late retry cannot void a newer consent.
            revoked = await db.arun(outreach.revoke_subscription, inbound.openid, list(inbound.refused),
                                    inbound.occurred_at)
            logger.info("wechat subscription refused openid=%s templates=%d revoked=%d",
                        mask(inbound.openid), len(inbound.refused), revoked)
        if inbound.sent:
            settled = await db.arun(outreach.subscription_sent, inbound.openid, list(inbound.sent),
                                    inbound.occurred_at)
            logger.info("wechat subscription sent report openid=%s messages=%d settled=%d",
                        mask(inbound.openid), len(inbound.sent), settled)
        if inbound.action != "bot":
            return None
        # Before the turn, so a shopper linked by UnionID is answered as the member at once.
        await self.unions.note(inbound.openid)
        if inbound.typed:
            choice = await self.state.resolve_choice(inbound.openid, inbound.text)
            # An SMS code typed for a pending link is checked here and never reaches the tracker.
            return choice or await linking.screen("wechat", inbound.openid, neutralise(inbound.text))
        return inbound.text

    async def _release(self, key: str) -> None:
        try:
            await self.dedup.release(key)
        except Exception:
            logger.exception("wechat dedup release failed; WeChat's retry will be dropped")

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for turns still finishing in the background (shutdown, tests)."""
        await self.turns.drain(timeout)


def _args(request: Request) -> dict[str, str]:
    """First value of each query argument."""
    return {key: values[0] for key, values in request.args.items() if values}


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        raise CallbackRejected(400, "bad content-length") from None


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it outgrows ``limit`` (chunked bodies declare no length)."""
    chunks: list[bytes] = [request.body] if request.body else []  # preloaded when not streamed
    size = len(request.body or b"")
    if size > limit:
        raise CallbackRejected(413, "body too large")
    while request.stream is not None and (chunk := await request.stream.read()) is not None:
        size += len(chunk)
        if size > limit:
            raise CallbackRejected(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _success() -> HTTPResponse:
    return response.text("success")


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
