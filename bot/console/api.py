"""The console's HTTP and websocket routes: login, queue, conversation, and the agent's acts.

Every route but the page shell, its static files and ``POST /api/login``
needs a valid session cookie (401 otherwise). Writes also need the
``X-Console: 1`` header, which a cross-site form cannot send (403), and the
cookie is ``SameSite=Strict``. The websocket checks the cookie and that the
Origin is this host.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import metrics
from bot.console import conversation, runtime, sessions, texts, views
from bot.console.live import live
from bot.settings import ConsoleSettings, secret_bytes
from bot.web import client_address, json_body, same_origin
from loyalty import db
from loyalty.config import settings as core_settings
from loyalty.errors import InvalidInput, LoyaltyError, Refused, Unavailable
from loyalty.handoff import auth, goodwill, service
from loyalty.handoff.auth import AgentView
from loyalty.identity import service as identity

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MAX_REPLY = 1000
Handler = Callable[..., Awaitable[HTTPResponse]]


def _error(code: str, status: int, **extra: Any) -> HTTPResponse:
    return response.json({"error": code, **extra}, status=status)


def _clean(text: object, max_len: int) -> str:
    """A message as typed, minus control characters other than line breaks."""
    if not isinstance(text, str):
        raise InvalidInput("Text is needed.", code="empty")
    cleaned = "".join(ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")).strip()
    if not cleaned:
        raise InvalidInput("Text is needed.", code="empty")
    if len(cleaned) > max_len:
        raise InvalidInput(f"At most {max_len} characters.", code="too_long", max=max_len)
    return cleaned


def authed(write: bool = False) -> Callable[[Handler], Handler]:
    """A route for a logged-in agent (401 otherwise); ``write`` also needs the console's own header (403)."""
    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def inner(self: Console, request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            try:
                agent = await self.who(request)
                if agent is None:
                    return _error("unauthorized", 401)
                if write and (request.headers.get("x-console") != "1" or not same_origin(request)):
                    return _error("forbidden", 403)
                return await fn(self, request, agent, *args, **kwargs)
            except LoyaltyError as exc:
                return response.json(exc.as_dict(), status=exc.http_status)
            except conversation.ConsoleUnavailable:
                return _error("assistant_unavailable", 503)

        return inner

    return wrap


def _me(a: AgentView) -> dict[str, Any]:
    hours = service.service_hours()
    return {"id": a.id, "username": a.username, "name": a.display_name, "role": a.role,
            "adjust_limit": core_settings().adjust_limit, "service_hours": hours.describe()}


class Console:
    """The console's routes, bound to its settings: the session secret and the trusted proxies."""

    def __init__(self, cfg: ConsoleSettings) -> None:
        self.cfg = cfg
        self.secret = secret_bytes(cfg)
        self.proxies = tuple(ipaddress.ip_network(n) for n in cfg.trusted_proxies)

    async def who(self, request: Request) -> AgentView | None:
        sess = sessions.read(request.cookies.get(sessions.COOKIE), self.secret)
        if sess is None:
            return None
        return await db.arun(auth.session_agent, sess.agent_id, sess.version, readonly=True)

    async def viewable(self, hid: int, agent: AgentView) -> dict[str, Any]:
        d = await views.details(hid)
        if not views.may_view(d["_view"], agent):
            raise Refused("This conversation is with another agent.", code="not_yours")
        return d

    # ------------------------------------------------------------ lifecycle

    async def start(self, app: Any, _loop: Any) -> None:
        runtime.attach(app)
        live.set_snapshot(views.snapshot)
        if self.cfg.redis_url:
            await live.start_redis(self.cfg.redis_url)
        app.ctx.console_poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self, app: Any, _loop: Any) -> None:
        poller = getattr(app.ctx, "console_poller", None)
        if poller is not None:
            poller.cancel()
        await live.stop()
        runtime.detach(app)

    async def _poll(self) -> None:
        """Push the queue when it changed where no event reached this process (CLI, other processes)."""
        seen: Any = None

        def signature(s: Any) -> tuple[Any, ...]:
            return tuple((h.id, h.status, h.agent_id) for h in service.queue(s) + service.active(s))

        while True:
            await asyncio.sleep(self.cfg.poll_seconds)
            try:
                now = await db.arun(signature, readonly=True)
            except Exception:
                log.warning("console queue poll failed", exc_info=True)
                continue
            if seen is not None and now != seen:
                live.queue_changed()
            seen = now

    # ------------------------------------------------------------ page and session

    async def page(self, request: Request) -> HTTPResponse:
        """The single-page console (a login form until a session exists; it holds no data)."""
        if not request.path.endswith("/"):
            return response.redirect(request.path + "/")  # its relative links need the slash
        return await response.file(str(STATIC / "index.html"), headers={
            "Cache-Control": "no-cache", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
            "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                                       "frame-ancestors 'none'",
        })

    async def login(self, request: Request) -> HTTPResponse:
        if request.headers.get("x-console") != "1" or not same_origin(request):
            return _error("forbidden", 403)
        try:
            data = json_body(request)
        except InvalidInput as exc:
            return response.json(exc.as_dict(), status=400)
        try:
            address = client_address(request.ip, request.headers.getall("x-forwarded-for", []), self.proxies)
            # argon2 is CPU-bound: keep it off the event loop.
            result = await asyncio.to_thread(auth.login, data.get("username"), data.get("password"),
                                             address=address)
        except Unavailable as exc:
            return response.json(exc.as_dict(), status=503)
        if result.agent is None:
            if result.error == "locked":
                return _error("locked", 429, retry_after=result.retry_after)
            return _error("bad_credentials", 401)
        resp = response.json({"agent": _me(result.agent)})
        self._set_cookie(resp, result.agent)
        return resp

    def _set_cookie(self, resp: HTTPResponse, a: AgentView) -> None:
        resp.cookies[sessions.COOKIE] = sessions.issue(a.id, a.session_version, self.cfg.session_hours, self.secret)
        c = resp.cookies[sessions.COOKIE]
        c["httponly"] = True
        c["samesite"] = "Strict"  # never sent on a cross-site request
        c["path"] = "/webhooks/console"
        c["max-age"] = self.cfg.session_hours * 3600
        if self.cfg.cookie_secure:
            c["secure"] = True

    @authed(write=True)
    async def logout(self, request: Request, agent: AgentView) -> HTTPResponse:
        # Bumping the version voids this cookie everywhere it was copied, not just in this browser.
        await db.arun(auth.end_sessions, agent.id)
        resp = response.json({"ok": True})
        del resp.cookies[sessions.COOKIE]
        return resp

    @authed()
    async def me(self, request: Request, agent: AgentView) -> HTTPResponse:
        return response.json(_me(agent))

    @authed(write=True)
    async def password(self, request: Request, agent: AgentView) -> HTTPResponse:
        data = json_body(request)
        a = await db.arun(auth.change_password, agent.id, data.get("old"), data.get("new"))
        resp = response.json({"ok": True})
        self._set_cookie(resp, a)  # the new version voided every other session, this one gets a fresh cookie
        return resp

    # ------------------------------------------------------------ reading

    @authed()
    async def queue(self, request: Request, agent: AgentView) -> HTTPResponse:
        return response.json(await views.snapshot())

    @authed()
    async def agents(self, request: Request, agent: AgentView) -> HTTPResponse:
        online = live.online()
        rows = await db.arun(auth.agents, readonly=True)
        return response.json({"agents": [
            {"id": a.id, "username": a.username, "name": a.display_name, "role": a.role, "online": a.id in online}
            for a in rows
        ]})

    @authed()
    async def handoff(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        d = await self.viewable(hid, agent)
        h: service.HandoffView = d.pop("_view")
        sender = d.pop("sender_id")
        app = request.app
        items, tracker = await conversation.transcript(app, sender)
        d["transcript"] = items
        d["channel"] = await conversation.channel_status(app, h.channel, sender, tracker)
        return response.json(d)

    # ------------------------------------------------------------ acting

    async def _announce(self, app: Any, h: service.HandoffView, agent: AgentView) -> conversation.Sent | None:
        if not self.cfg.announce_agent:
            return None
        return await conversation.say(app, h.id, h.sender_id, h.channel, texts.agent_joined(h.language,
                                      agent.display_name), agent_name=agent.display_name,
                                      agent_username=agent.username)

    @authed(write=True)
    async def take(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        h = await db.arun(service.take, hid, agent.id)
        if h.taken_at is not None:
            metrics.handoff_taken((h.taken_at - h.created_at).total_seconds())
        live.queue_changed()
        sent = await self._announce(request.app, h, agent)
        if sent is not None and sent.ok:
            await live.broadcast({"type": "message", "handoff": h.id, "from": "agent", "agent": agent.display_name,
                                  "text": texts.agent_joined(h.language, agent.display_name), "ts": sent.ts})
        return response.json({"handoff": views.entry(h, None), "announced": bool(sent and sent.ok),
                              "delivery": None if sent is None else sent.code})

    @authed(write=True)
    async def reply(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        text = _clean(json_body(request).get("text"), MAX_REPLY)
        h = await db.arun(service.check_assignee, hid, agent.id)
        sent = await conversation.say(request.app, h.id, h.sender_id, h.channel, text,
                                      agent_name=agent.display_name, agent_username=agent.username)
        body = {"ok": sent.ok, "ts": sent.ts, "quota_left": sent.quota_left, "window_ends": sent.window_ends}
        if not sent.ok:
            # Kept as an internal note so the words are not lost with the refusal.
            await db.arun(service.add_note, h.id, agent_id=agent.id, kind="system",
                          text=f"undelivered ({sent.code}): {text}")
            return response.json({**body, "error": sent.code}, status=409)
        await live.broadcast({"type": "message", "handoff": h.id, "from": "agent", "agent": agent.display_name,
                              "text": text, "ts": sent.ts})
        return response.json(body)

    @authed(write=True)
    async def coupon(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        data = json_body(request)
        claim = await db.arun(goodwill.grant_coupon, hid, agent_id=agent.id, campaign=data.get("campaign"),
                              key=data.get("key"))
        c = claim.coupon
        return response.json({"code": c.code, "campaign": c.campaign.code, "name_zh": c.campaign.name_zh,
                              "name_en": c.campaign.name_en, "last_day": c.last_day.isoformat(),
                              "replayed": claim.replayed})

    @authed(write=True)
    async def adjust(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        data = json_body(request)
        mv = await db.arun(goodwill.adjust_points, hid, agent_id=agent.id, delta=data.get("delta"),
                           reason=data.get("reason"), key=data.get("key"))
        return response.json({"delta": mv.delta, "balance": mv.balance})

    @authed(write=True)
    async def link(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        """Start linking the shopper's chat to a member whose number changed: an SMS code to the new number.

        Body: the member (``member_id``, or ``phone``: the number on file) and ``new_phone``.
        Audited under the agent's name; the shopper is told where the code went.
        """
        data = json_body(request)
        member_id = data.get("member_id")
        if member_id is not None and (not isinstance(member_id, int) or isinstance(member_id, bool)):
            raise InvalidInput("member_id is a number.", code="invalid_member")
        h = await db.arun(service.check_assignee, hid, agent.id)
        # Two short transactions around the SMS provider's HTTP call: off the event loop.
        sent = await asyncio.to_thread(
            identity.agent_link, h.channel, h.sender_id, member_id=member_id,
            member_phone=data.get("phone") if isinstance(data.get("phone"), str) else None,
            new_phone=data.get("new_phone") if isinstance(data.get("new_phone"), str) else None,
            agent=f"agent:{agent.username}",
        )
        minutes = max(sent.expires_in // 60, 1)
        told = await conversation.say(request.app, h.id, h.sender_id, h.channel,
                                      texts.link_code_sent(h.language, sent.phone_masked, minutes),
                                      agent_name=agent.display_name, agent_username=agent.username)
        await db.arun(service.add_note, h.id, agent_id=agent.id, kind="system",
                      text=f"link code sent to {sent.phone_masked} for member {sent.member_id}")
        return response.json({"member_id": sent.member_id, "phone": sent.phone_masked,
                               "expires_in": sent.expires_in, "told": told.ok, "delivery": told.code})

    @authed(write=True)
    async def note(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        await self.viewable(hid, agent)
        n = await db.arun(service.add_note, hid, agent_id=agent.id, text=json_body(request).get("text"))
        return response.json({"id": n.id, "kind": n.kind, "text": n.text, "agent": n.agent_username,
                              "at": n.created_at.isoformat()})

    @authed(write=True)
    async def transfer(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        target = json_body(request).get("to")
        rows = await db.arun(auth.agents, readonly=True)
        found = next((a for a in rows if a.username == str(target or "").strip().lower()), None)
        if found is None:
            return _error("agent_not_found", 404)
        h = await db.arun(service.transfer, hid, agent_id=agent.id, to_agent_id=found.id)
        live.queue_changed()
        await live.broadcast({"type": "transferred", "handoff": h.id, "to": found.id, "by": agent.display_name})
        return response.json({"handoff": views.entry(h, None)})

    @authed(write=True)
    async def close(self, request: Request, agent: AgentView, hid: int) -> HTTPResponse:
        conversation.rasa_agent(request.app)  # refuse before closing if the assistant cannot take over
        h = await db.arun(service.close, hid, agent_id=agent.id)
        # The database says closed first: if this process dies now, the broker resumes the
        # conversation at the shopper's next message (see broker._maybe_stuck).
        await conversation.hand_back(request.app, h.sender_id, h.channel)
        live.queue_changed()
        await live.broadcast({"type": "ended", "handoff": h.id, "by": agent.username})
        return response.json({"handoff": views.entry(h, None)})

    # ------------------------------------------------------------ live updates

    async def socket(self, request: Request, ws: Any) -> None:
        agent = await self.who(request)
        if agent is None or not same_origin(request):
            await ws.send(json.dumps({"type": "error", "code": "unauthorized"}))
            await ws.close()
            return
        live.register(ws, agent.id, agent.role)
        try:
            await ws.send(json.dumps(await views.snapshot(), ensure_ascii=False, default=str))
            while True:
                msg = await ws.recv()
                if msg is None:
                    continue
                # The page only pings; a session ended meanwhile (logout elsewhere) closes the socket.
                if await self.who(request) is None:
                    await ws.send(json.dumps({"type": "error", "code": "unauthorized"}))
                    break
                await ws.send(json.dumps({"type": "pong"}))
        except Exception as exc:  # closed by the browser or the network
            log.debug("console socket closed: %s", type(exc).__name__)
        finally:
            live.unregister(ws)


#: (method, path, Console method) of every HTTP route; the websocket is /ws.
ROUTES = (
    ("GET", "/", "page"),
    ("POST", "/api/login", "login"),
    ("POST", "/api/logout", "logout"),
    ("GET", "/api/me", "me"),
    ("POST", "/api/password", "password"),
    ("GET", "/api/queue", "queue"),
    ("GET", "/api/agents", "agents"),
    ("GET", "/api/handoffs/<hid:int>", "handoff"),
    ("POST", "/api/handoffs/<hid:int>/take", "take"),
    ("POST", "/api/handoffs/<hid:int>/reply", "reply"),
    ("POST", "/api/handoffs/<hid:int>/coupon", "coupon"),
    ("POST", "/api/handoffs/<hid:int>/points", "adjust"),
    ("POST", "/api/handoffs/<hid:int>/note", "note"),
    ("POST", "/api/handoffs/<hid:int>/link", "link"),
    ("POST", "/api/handoffs/<hid:int>/transfer", "transfer"),
    ("POST", "/api/handoffs/<hid:int>/close", "close"),
)


def _plain(method: Callable[..., Awaitable[Any]]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """A bound method as a plain function: Sanic marks its handlers with attributes."""
    @functools.wraps(method)
    async def handle(*args: Any, **kwargs: Any) -> Any:
        return await method(*args, **kwargs)

    return handle


def build(cfg: ConsoleSettings) -> Blueprint:
    """The console blueprint (Rasa mounts it at /webhooks/console/)."""
    console = Console(cfg)
    bp = Blueprint("console_webhook", __name__)
    bp.static("/static", str(STATIC), name="console_static")
    for method, path, name in ROUTES:
        bp.add_route(_plain(getattr(console, name)), path, methods=[method], name=name)
    bp.add_websocket_route(_plain(console.socket), "/ws", name="socket")
    bp.listener("after_server_start")(_plain(console.start))
    bp.listener("before_server_stop")(_plain(console.stop))
    return bp
