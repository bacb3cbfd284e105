"""The web chat channel: a page served by the bot and a websocket per visitor.

Protocol (JSON text frames):
  client → {"type": "hello", "last_ts": 0.0}        after every (re)connect; 0 replays the history
  client → {"type": "message", "id": "<uuid>", "text": "…", "payload": "/intent{…}"?}
  server → {"type": "bot", "ts": 1700000000.1, "text": "…", "buttons": [...], "agent": "…"?}
  server → {"type": "user", "ts": …, "text": "…"}   (history replay only)
  server → {"type": "ack", "id": "<uuid>"}  |  {"type": "error", "code": "…"}

The Rasa tracker is the outbox: on ``hello`` the server replays every bot
turn newer than ``last_ts``, so a dropped connection loses nothing. A
message id seen before is acknowledged and not processed again, so a resend
after a drop counts once. Visitors get an id signed with ``WEBCHAT_SECRET``:
nobody can speak as another shopper without that shopper's token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request

from bot import buttons, linking, logs, ops
from bot.limits import too_long_reply
from bot.lock_store import queued
from bot.settings import WebChatSettings, dev_secret, load_webchat_settings
from bot.tracker_store import bounded
from bot.webchat.hub import hub
from loyalty import db
from loyalty.outreach import service as outreach

log = logging.getLogger(__name__)
# Rasa imports the channels before the first message: apologise instead of going silent,
# count and log every turn (bot/ops.py).
ops.install()
STATIC = Path(__file__).resolve().parent / "static"
# Characters a shopper may send at once: BOT_MAX_TEXT_CHARS (WebChatSettings.max_text_chars).
MAX_FRAME = 16 * 1024  # bytes; a larger frame closes the socket (code 1009) before any parsing
MAX_BODY = 8 * 1024  # bytes for the REST fallback
CLOSE_TOO_BIG = 1009  # the websocket close code for "message too big"
REPLAY_LIMIT = 100  # messages of history sent to a page that opens


def _secret(cfg: WebChatSettings) -> bytes:
    """WEBCHAT_SECRET, or a random secret kept in var/ for development."""
    return cfg.secret.encode() if cfg.secret else dev_secret(cfg.var_dir, "webchat.secret")


def frame_limit(max_chars: int) -> int:
    """Bytes a websocket frame may carry: 16 KiB, more only if the text limit needs it.

    A character can take 6 bytes in JSON (``\\uXXXX``), plus room for the id and payload.
    """
    return max(MAX_FRAME, 6 * max_chars + 1024)


def body_limit(max_chars: int) -> int:
    """Bytes a REST request body may carry, by the same reckoning as :func:`frame_limit`."""
    return max(MAX_BODY, 6 * max_chars + 2048)


def _limit_frames(ws: Any, limit: int) -> None:
    """Hold the frames this socket accepts to ``limit`` bytes.

    Sanic reads ``WEBSOCKET_MAX_SIZE`` when the server starts, before any
    listener of a blueprint mounted in Rasa's app can change it, so the app's
    limit stays at its 1 MiB default. The connection's own limit (websockets'
    ``max_size``) applies from the next frame it parses.
    """
    connection = getattr(ws, "connection", None)
    if connection is not None and hasattr(connection, "max_size"):
        connection.max_size = limit


def _size(frame: str | bytes) -> int:
    return len(frame.encode("utf-8")) if isinstance(frame, str) else len(frame)


def _page_language(request: Request) -> str:
    """The page's language (``?lang=``), else the browser's (Accept-Language), else Chinese."""
    wanted = (request.args.get("lang") or request.headers.get("accept-language") or "zh").lower()
    return "en" if wanted.startswith("en") else "zh"


def sign(visitor: str, secret: bytes) -> str:
    return hmac.new(secret, visitor.encode(), hashlib.sha256).hexdigest()[:32]


def verify(visitor: str, token: str, secret: bytes) -> bool:
    return bool(visitor) and hmac.compare_digest(sign(visitor, secret), token or "")


def sender_id(visitor: str) -> str:
    """The Rasa conversation id of a web chat visitor."""
    return f"web-{visitor}"


def visitor_of(sender: str) -> str | None:
    return sender[4:] if sender.startswith("web-") else None


def _button(button: dict[str, Any]) -> dict[str, Any]:
    return {"title": button.get("title", ""), "payload": button.get("payload", "")}


def bot_payload(message: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of one bot message."""
    out: dict[str, Any] = {"type": "bot", "ts": message.get("timestamp"), "text": message.get("text") or ""}
    for key in ("buttons", "quick_replies"):
        if message.get(key):
            out["buttons"] = [_button(b) for b in message[key]]
    if message.get("image"):
        out["image"] = message["image"]
    if message.get("agent"):
        out["agent"] = message["agent"]
    return out


class WebchatOutput(OutputChannel):
    """Pushes each bot message to the visitor's open sockets, with its tracker timestamp."""

    @classmethod
    def name(cls) -> str:
        return "webchat"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        payload = bot_payload(message)
        self.messages.append(payload)
        visitor = visitor_of(recipient_id)
        if visitor is not None:
            await hub.push(visitor, payload)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})


async def _show_inbox(ws: Any, visitor: str) -> None:
    """Messages the brand sent while the page was closed (outreach), shown once at this visit."""
    try:
        texts = await db.arun(outreach.inbox_for_visitor, visitor)
    except Exception:  # the chat goes on without them; they stay unseen for the next visit
        log.warning("web chat inbox unavailable")
        return
    for text in texts:
        await ws.send(json.dumps({"type": "bot", "ts": time.time(), "text": text, "inbox": True}, ensure_ascii=False))


async def _inbox_seen(send_id: int) -> None:
    await db.arun(outreach.inbox_seen, send_id)


class _Seen:
    """Recently processed message ids (bounded), besides those found in the tracker."""

    def __init__(self, size: int = 10000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, key: str) -> bool:
        """Record ``key``; False if it was already there."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class WebchatInput(InputChannel):
    """Rasa input channel serving the page, the session endpoint and the websocket."""

    @classmethod
    def name(cls) -> str:
        return "webchat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WebchatInput:
        creds = credentials or {}
        return cls(allow_rest=bool(creds.get("allow_rest", False)))

    def __init__(self, allow_rest: bool = False, settings: WebChatSettings | None = None) -> None:
        self.settings = settings or load_webchat_settings()
        self.allow_rest = allow_rest
        self.secret = _secret(self.settings)
        self.seen = _Seen()
        self.max_chars = self.settings.max_text_chars
        self.max_frame = frame_limit(self.max_chars)
        self.max_body = body_limit(self.max_chars)

    def get_output_channel(self) -> OutputChannel:
        """Pushes to the visitor's open pages (agent replies, hand-back, trigger_intent)."""
        return WebchatOutput()

    @staticmethod
    def _store(request: Request) -> Any:
        agent = getattr(request.app.ctx, "agent", None)
        return None if agent is None else agent.tracker_store

    async def _tracker(self, request: Request, sender: str) -> DialogueStateTracker | None:
        store = self._store(request)
        return None if store is None else await store.retrieve(sender)

    async def _seen_before(self, request: Request, sender: str, message_id: str,
                           tracker: DialogueStateTracker | None) -> bool:
        """Whether the conversation already holds this message: an indexed look-up where the store has one."""
        store = bounded(self._store(request))
        if store is not None:
            return bool(await store.has_message(sender, message_id))
        if tracker is None:
            return False
        return any(isinstance(e, UserUttered) and e.message_id == message_id for e in tracker.events)

    async def _replay(self, request: Request, ws: Any, sender: str, last_ts: float) -> None:
        store = self._store(request)
        if store is None:
            return
        fresh = last_ts == 0

        def shown(event: dict[str, Any]) -> bool:
            if event.get("event") == "bot":
                return True
            # A fresh page shows the shopper's side too; a reconnecting page already has it.
            text = event.get("text") or ""
            return fresh and event.get("event") == "user" and bool(text) and not text.startswith("/")

        sql = bounded(store)
        if sql is not None:  # the newest frames only, read newest first with an index
            events = await sql.recent_messages(sender, last_ts, REPLAY_LIMIT, keep=shown)
        else:
            tracker = await store.retrieve(sender)
            if tracker is None:
                return
            events = [e.as_dict() for e in tracker.events
                      if e.timestamp > last_ts and isinstance(e, BotUttered | UserUttered)]
            events = [e for e in events if shown(e)][-REPLAY_LIMIT:]
        for e in events:
            if e.get("event") == "bot":
                frame = bot_payload(BotUttered(e.get("text"), e.get("data") or {}, e.get("metadata") or {},
                                               e.get("timestamp")).message())
            else:
                frame = {"type": "user", "ts": e.get("timestamp"), "text": e.get("text")}
            await ws.send(json.dumps(frame, ensure_ascii=False))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The page, the session and socket endpoints, and the stores' QR codes (Rasa mounts both)."""
        bp = Blueprint("webchat_webhook", __name__)
        bp.static("/static", str(STATIC), name="webchat_static")
        channel = self

        @bp.listener("before_server_start")
        async def _fan_out(app: Any, _loop: Any) -> None:
            hub.on_inbox_delivered = _inbox_seen
            if channel.settings.redis_url:
                await hub.start_redis(channel.settings.redis_url)

        @bp.route("/", methods=["GET"])
        async def page(request: Request) -> response.HTTPResponse:
            return await response.file(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

        @bp.route("/session", methods=["POST"])
        async def session(request: Request) -> response.HTTPResponse:
            """A new visitor id and its token, or a check of stored ones."""
            body = request.json if request.body and len(request.body) < channel.max_body else None
            if isinstance(body, dict) and verify(str(body.get("visitor", "")), str(body.get("token", "")),
                                                 channel.secret):
                return response.json({"visitor": body["visitor"], "token": body["token"]})
            visitor = uuid.uuid4().hex
            return response.json({"visitor": visitor, "token": sign(visitor, channel.secret)})

        async def handle(
            request: Request, visitor: str, data: dict[str, Any], metadata: dict[str, Any]
        ) -> dict[str, Any]:
            text = data.get("payload") or data.get("text")
            message_id = str(data.get("id") or "")[:64] or uuid.uuid4().hex
            if not isinstance(text, str) or not text.strip():
                return {"type": "error", "code": "empty", "id": message_id}
            if len(text) > channel.max_chars:
                # Refused, not cut: the page gives the text back to shorten, and a cut
                # message would be answered as if it said something it did not.
                reply = too_long_reply(text, channel.max_chars, metadata.get("lang") or _page_language(request))
                return {"type": "error", "code": "too_long", "max": channel.max_chars, "text": reply, "id": message_id}
            sender = sender_id(visitor)
            if not channel.seen.add(f"{sender}:{message_id}"):
                return {"type": "ack", "id": message_id, "duplicate": True}
            agent = getattr(request.app.ctx, "agent", None)
            # Its place in the conversation's queue is taken on arrival (several replicas: bot/lock_store.py).
            async with queued(getattr(agent, "lock_store", None), sender):
                return await process(request, visitor, data, metadata, text, message_id, sender)

        async def process(
            request: Request, visitor: str, data: dict[str, Any], metadata: dict[str, Any],
            text: str, message_id: str, sender: str,
        ) -> dict[str, Any]:
            # The bounded store answers both questions below with indexed reads of a few rows; only
            # another store needs the whole tracker (Rasa reads it again to handle the message).
            store = bounded(channel._store(request))
            tracker = None if store is not None else await channel._tracker(request, sender)
            if await channel._seen_before(request, sender, message_id, tracker):
                return {"type": "ack", "id": message_id, "duplicate": True}
            # An SMS code typed for a pending link is checked here and never reaches the tracker.
            text = await linking.screen("webchat", sender, text)
            if not data.get("payload"):
                # A typed button title acts as the button (see bot/buttons.py).
                if store is not None:
                    latest = await store.latest_turn(sender)
                else:
                    latest = list(tracker.events) if tracker is not None else []
                text = buttons.match(text, buttons.last_offered(latest)) or text
            out = WebchatOutput()
            logs.start_turn()  # this message's task only: each message runs in a task or request of its own
            await on_new_message(
                UserMessage(
                    text.strip(), out, sender, input_channel=channel.name(),
                    message_id=message_id, metadata={**metadata, "channel": "webchat", "visitor": visitor},
                )
            )
            return {"type": "ack", "id": message_id, "messages": out.messages}

        @bp.websocket("/ws")
        async def socket(request: Request, ws: Any) -> None:
            visitor = request.args.get("visitor", "")
            if not verify(visitor, request.args.get("token", ""), channel.secret):
                await ws.send(json.dumps({"type": "error", "code": "unauthorized"}))
                await ws.close()
                return
            _limit_frames(ws, channel.max_frame)
            metadata = {k: request.args.get(k) for k in ("store", "lang") if request.args.get(k)}
            hub.register(visitor, ws)
            tasks: set[asyncio.Task[None]] = set()
            try:
                while True:
                    raw = await ws.recv()
                    if raw is None:
                        continue
                    if _size(raw) > channel.max_frame:
                        # Only a frame parsed before _limit_frames took effect gets here.
                        await ws.close(code=CLOSE_TOO_BIG, reason="message too big")
                        break
                    try:
                        data = json.loads(raw)
                        assert isinstance(data, dict)
                    except (ValueError, AssertionError):
                        await ws.send(json.dumps({"type": "error", "code": "bad_frame"}))
                        continue
                    if data.get("type") == "hello":
                        await channel._replay(request, ws, sender_id(visitor), float(data.get("last_ts") or 0))
                        await _show_inbox(ws, visitor)
                    elif data.get("type") == "message":
                        # Handle in the background so a slow turn never blocks the socket reader.
                        async def run(d: dict[str, Any] = data) -> None:
                            reply = await handle(request, visitor, d, metadata)
                            reply.pop("messages", None)  # already pushed one by one
                            await ws.send(json.dumps(reply))

                        task = asyncio.create_task(run())
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
            except Exception as exc:  # closed by the client or the network
                log.debug("web chat socket closed: %s", type(exc).__name__)
            finally:
                hub.unregister(visitor, ws)

        @bp.route("/send", methods=["POST"], stream=True)
        async def send(request: Request) -> response.HTTPResponse:
            """A token-protected REST entry returning the bot's replies; off unless allow_rest.

            The body is streamed so an oversized one is refused before it is read or parsed.
            """
            if not channel.allow_rest:
                return response.json({"error": "disabled"}, status=404)
            too_large = response.json({
                "error": "too_large", "max_bytes": channel.max_body,
                "text": too_long_reply(None, channel.max_chars, _page_language(request)),
            }, status=413)
            try:
                declared = int(request.headers.get("content-length") or 0)
            except ValueError:
                return response.json({"error": "bad_length"}, status=400)
            if declared > channel.max_body:
                return too_large
            body = b""
            while True:
                chunk = await request.stream.read() if request.stream is not None else None
                if chunk is None:
                    break
                body += chunk
                if len(body) > channel.max_body:
                    return too_large
            try:
                data = json.loads(body or b"")
                assert isinstance(data, dict)
            except (ValueError, AssertionError):
                return response.json({"error": "bad_json"}, status=400)
            visitor = str(data.get("visitor", ""))
            if not verify(visitor, str(data.get("token", "")), channel.secret):
                return response.json({"error": "unauthorized"}, status=401)
            reply = await handle(request, visitor, data, {})
            status = 400 if reply["type"] == "error" else 200
            return response.json(reply, status=status)

        return bp
