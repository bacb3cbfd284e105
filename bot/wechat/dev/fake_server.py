"""A local stand-in for WeChat's API server, for tests and development.

It speaks the endpoints the bot uses, with WeChat's JSON shapes and error
codes: ``token``, ``message/custom/send`` (text and image), ``message/template/send``,
``message/subscribe/bizsend`` (recorded at ``/_fake/notices``), ``media/upload``,
``user/info`` (with the UnionIDs set through ``/_fake/users``),
``qrcode/create`` and ``menu/*``.
Control endpoints under ``/_fake/`` let tests inspect sent messages and make
the next calls fail, expire tokens or slow down.

Run: ``python -m bot.wechat.dev.fake_server --port 8089`` and set
``WECHAT_API_BASE_URL=http://127.0.0.1:8089/cgi-bin/``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

MAX_TEXT_BYTES = 2048


@dataclass
class FakeWeChatState:
    """Everything the fake server remembers; tests read it through ``/_fake/``."""

    app_id: str
    app_secret: str
    token_ttl: int = 7200
    cs_quota: int = 5  # customer-service messages per openid until reset
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires_at
    token_fetches: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    sent_per_openid: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # queued errors
    delay: float = 0.0
    menu: dict[str, Any] | None = None
    qrcodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tickets: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    media: dict[str, bytes] = field(default_factory=dict)  # media_id -> uploaded bytes
    unionids: dict[str, str] = field(default_factory=dict)  # openid -> unionid
    user_lookups: int = 0
    # Template and subscription messages: the templates the account holds, every send recorded.
    templates: set[str] = field(default_factory=lambda: {"TPL-POINTS", "TPL-COUPON", "TPL-TIER", "SUB-MARKETING"})
    notices: list[dict[str, Any]] = field(default_factory=list)
    next_msgid: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))


def _err(code: int, msg: str) -> HTTPResponse:
    return response.json({"errcode": code, "errmsg": msg})


def _state(request: Request) -> FakeWeChatState:
    state: FakeWeChatState = request.app.ctx.fake
    return state


def _check_token(state: FakeWeChatState, request: Request) -> HTTPResponse | None:
    token = request.args.get("access_token")
    if not token or token not in state.tokens:
        return _err(40001, "invalid credential, access_token is invalid or not latest")
    if state.tokens[token] <= time.time():
        return _err(42001, "access_token expired")
    return None


async def _injected(state: FakeWeChatState, path: str, openid: str | None = None) -> HTTPResponse | None:
    """A queued failure for this path (and shopper), after the configured delay."""
    if state.delay:
        await asyncio.sleep(state.delay)
    for failure in state.failures:
        if failure["path"] == path and failure.get("openid") in (None, openid):
            failure["times"] -= 1
            if failure["times"] <= 0:
                state.failures.remove(failure)
            return _err(int(failure["errcode"]), failure.get("errmsg", "injected failure"))
    return None


# ---------------------------------------------------------------- WeChat's API


async def token(request: Request) -> HTTPResponse:
    state = _state(request)
    args = {k: v[0] for k, v in request.args.items()}
    if args.get("grant_type") != "client_credential":
        return _err(40002, "invalid grant_type")
    if args.get("appid") != state.app_id:
        return _err(40013, "invalid appid")
    if args.get("secret") != state.app_secret:
        return _err(40125, "invalid appsecret")
    failure = await _injected(state, "token")
    if failure:
        return failure
    state.token_fetches += 1
    value = secrets.token_urlsafe(48)
    state.tokens[value] = time.time() + state.token_ttl
    return response.json({"access_token": value, "expires_in": state.token_ttl})


async def _addressed(request: Request, path: str) -> HTTPResponse | tuple[FakeWeChatState, dict[str, Any], str]:
    """What every send to one follower checks first: the token, a JSON body, an openid, injected failures."""
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    try:
        data = json.loads(request.body or b"")
    except ValueError:
        return _err(47001, "data format error")
    openid = data.get("touser")
    if not openid:
        return _err(40003, "invalid openid")
    return await _injected(state, path, openid) or (state, data, openid)


async def custom_send(request: Request) -> HTTPResponse:
    addressed = await _addressed(request, "message/custom/send")
    if isinstance(addressed, HTTPResponse):
        return addressed
    state, data, openid = addressed
    if data.get("msgtype") == "text":
        content = (data.get("text") or {}).get("content", "")
        if not content:
            return _err(44003, "empty news data")
        if len(content.encode("utf-8")) > MAX_TEXT_BYTES:
            return _err(45002, "content size out of limit")
    elif data.get("msgtype") == "image":
        if (data.get("image") or {}).get("media_id") not in state.media:
            return _err(40007, "invalid media_id")
    if state.sent_per_openid.get(openid, 0) >= state.cs_quota:
        return _err(45047, "out of response count limit")
    state.sent_per_openid[openid] = state.sent_per_openid.get(openid, 0) + 1
    state.messages.append({**data, "received_at": time.time()})
    logger.info(
        "fake wechat: customer-service message to %s: %s", openid, json.dumps(data, ensure_ascii=False)
    )
    return _err(0, "ok")


async def _notice(request: Request, path: str, kind: str) -> HTTPResponse:
    """Template and subscription messages: WeChat's checks and errcodes, then recorded."""
    addressed = await _addressed(request, path)
    if isinstance(addressed, HTTPResponse):
        return addressed
    state, data, _openid = addressed
    if data.get("template_id") not in state.templates:
        return _err(40037, "invalid template_id")
    if not isinstance(data.get("data"), dict) or not data["data"]:
        return _err(47003, "argument invalid! data is empty")
    msgid = next(state.next_msgid)
    state.notices.append({**data, "kind": kind, "msgid": msgid, "received_at": time.time()})
    return response.json({"errcode": 0, "errmsg": "ok", "msgid": msgid})


async def template_send(request: Request) -> HTTPResponse:
    return await _notice(request, "message/template/send", "template")


async def subscribe_bizsend(request: Request) -> HTTPResponse:
    return await _notice(request, "message/subscribe/bizsend", "subscribe")


async def fake_notices(request: Request) -> HTTPResponse:
    touser = request.args.get("touser")
    return response.json({"notices": [n for n in _state(request).notices if touser in (None, n.get("touser"))]})


async def media_upload(request: Request) -> HTTPResponse:
    """A temporary image (multipart field ``media``); the bytes stay readable at /_fake/media/<id>."""
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    failure = await _injected(state, "media/upload")
    if failure:
        return failure
    if request.args.get("type") != "image":
        return _err(40004, "invalid media type")
    upload = (request.files or {}).get("media")
    body = upload[0].body if isinstance(upload, list) else getattr(upload, "body", None)
    if not body:
        return _err(41005, "media data missing")
    if not body.startswith((b"\x89PNG", b"\xff\xd8")) or len(body) > 2 * 1024 * 1024:
        return _err(40005, "invalid file type")
    media_id = f"fake-media-{uuid.uuid4().hex}"
    state.media[media_id] = body
    return response.json({"type": "image", "media_id": media_id, "created_at": int(time.time())})


async def user_info(request: Request) -> HTTPResponse:
    """Basic user information; ``unionid`` only for openids given one through /_fake/users."""
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    openid = request.args.get("openid")
    if not openid:
        return _err(40003, "invalid openid")
    failure = await _injected(state, "user/info", openid)
    if failure:
        return failure
    state.user_lookups += 1
    info: dict[str, Any] = {"subscribe": 1, "openid": openid, "language": "zh_CN",
                            "subscribe_time": int(time.time()), "remark": "", "groupid": 0, "tagid_list": []}
    if openid in state.unionids:
        info["unionid"] = state.unionids[openid]
    return response.json(info)


async def qrcode_create(request: Request) -> HTTPResponse:
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    failure = await _injected(state, "qrcode/create")
    if failure:
        return failure
    data = json.loads(request.body or b"{}")
    action = data.get("action_name")
    scene = (data.get("action_info") or {}).get("scene") or {}
    if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"):
        return _err(40053, "invalid action info")
    if not (scene.get("scene_str") or scene.get("scene_id")):
        return _err(40053, "invalid action info")
    ticket = f"fake-ticket-{next(state.tickets)}"
    result: dict[str, Any] = {"ticket": ticket, "url": f"http://weixin.qq.com/q/{ticket}"}
    if action in ("QR_SCENE", "QR_STR_SCENE"):
        result["expire_seconds"] = int(data.get("expire_seconds", 60))
    state.qrcodes[ticket] = {"action_name": action, "scene": scene}
    return response.json(result)


async def menu_create(request: Request) -> HTTPResponse:
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    data = json.loads(request.body or b"{}")
    if not isinstance(data.get("button"), list) or not data["button"]:
        return _err(40016, "invalid button size")
    state.menu = data
    return _err(0, "ok")


async def menu_get(request: Request) -> HTTPResponse:
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    if state.menu is None:
        return _err(46003, "menu no exist")
    return response.json({"menu": state.menu})


async def menu_delete(request: Request) -> HTTPResponse:
    state = _state(request)
    bad = _check_token(state, request)
    if bad:
        return bad
    state.menu = None
    return _err(0, "ok")


# ---------------------------------------------------------------- control (tests)


async def fake_messages(request: Request) -> HTTPResponse:
    state = _state(request)
    touser = request.args.get("touser")
    found = [m for m in state.messages if touser in (None, m.get("touser"))]
    return response.json({"messages": found})


async def fake_users(request: Request) -> HTTPResponse:
    """Give openids a UnionID: {"openid": "o1", "unionid": "u1"}."""
    state = _state(request)
    spec = request.json or {}
    state.unionids[str(spec["openid"])] = str(spec["unionid"])
    return response.json({"users": len(state.unionids)})


async def fake_media(request: Request, media_id: str) -> HTTPResponse:
    """The bytes of an uploaded image."""
    body = _state(request).media.get(media_id)
    if body is None:
        return response.json({"error": "unknown media"}, status=404)
    return response.raw(body, content_type="image/png")


async def fake_stats(request: Request) -> HTTPResponse:
    state = _state(request)
    return response.json(
        {
            "token_fetches": state.token_fetches,
            "messages": len(state.messages),
            "menu": state.menu,
            "qrcodes": state.qrcodes,
            "user_lookups": state.user_lookups,
            "media": len(state.media),
        }
    )


async def fake_fail(request: Request) -> HTTPResponse:
    """Queue an error: {"path": "message/custom/send", "errcode": 45047, "times": 1, "openid": null}."""
    state = _state(request)
    spec = request.json or {}
    state.failures.append({"times": 1, **spec})
    return response.json({"queued": len(state.failures)})


async def fake_delay(request: Request) -> HTTPResponse:
    state = _state(request)
    state.delay = float((request.json or {}).get("seconds", 0))
    return response.json({"delay": state.delay})


async def fake_expire(request: Request) -> HTTPResponse:
    state = _state(request)
    for value in state.tokens:
        state.tokens[value] = 0.0
    return response.json({"expired": len(state.tokens)})


async def fake_interaction(request: Request) -> HTTPResponse:
    """A shopper interacted: their customer-service quota starts again."""
    state = _state(request)
    openid = (request.json or {}).get("openid") or request.args.get("openid")
    state.sent_per_openid.pop(openid, None)
    return response.json({"reset": openid})


async def fake_reset(request: Request) -> HTTPResponse:
    state = _state(request)
    state.messages.clear()
    state.notices.clear()
    state.sent_per_openid.clear()
    state.failures.clear()
    state.unionids.clear()
    state.delay = 0.0
    return response.json({"reset": True})


ROUTES = (
    ("GET", "/cgi-bin/token", token),
    ("POST", "/cgi-bin/message/custom/send", custom_send),
    ("POST", "/cgi-bin/media/upload", media_upload),
    ("POST", "/cgi-bin/message/template/send", template_send),
    ("POST", "/cgi-bin/message/subscribe/bizsend", subscribe_bizsend),
    ("GET", "/_fake/notices", fake_notices),
    ("GET", "/cgi-bin/user/info", user_info),
    ("POST", "/cgi-bin/qrcode/create", qrcode_create),
    ("POST", "/cgi-bin/menu/create", menu_create),
    ("GET", "/cgi-bin/menu/get", menu_get),
    ("GET", "/cgi-bin/menu/delete", menu_delete),
    ("GET", "/_fake/messages", fake_messages),
    ("GET", "/_fake/stats", fake_stats),
    ("POST", "/_fake/fail", fake_fail),
    ("POST", "/_fake/delay", fake_delay),
    ("POST", "/_fake/expire_tokens", fake_expire),
    ("POST", "/_fake/interaction", fake_interaction),
    ("POST", "/_fake/reset", fake_reset),
    ("POST", "/_fake/users", fake_users),
    ("GET", "/_fake/media/<media_id>", fake_media),
)


def create_fake_wechat_app(
    app_id: str = "wxfake0000000001",
    app_secret: str = "fake-secret",
    *,
    token_ttl: int = 7200,
    cs_quota: int = 5,
    name: str | None = None,
) -> Sanic:
    """A Sanic app imitating ``https://api.weixin.qq.com/``; state in ``app.ctx.fake``."""
    app = Sanic(name or f"fake_wechat_{uuid.uuid4().hex[:8]}")
    app.ctx.fake = FakeWeChatState(app_id, app_secret, token_ttl=token_ttl, cs_quota=cs_quota)
    for method, path, handler in ROUTES:
        app.add_route(handler, path, methods=[method], name=handler.__name__)
    return app


def main() -> None:
    """Command line: serve the fake API on a loopback port."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--app-id", default=os.environ.get("WECHAT_APP_ID") or "wxfake0000000001")
    parser.add_argument("--secret", default=os.environ.get("WECHAT_APP_SECRET") or "fake-secret")
    parser.add_argument(
        "--cs-quota", type=int, default=5, help="messages per openid until /_fake/interaction"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_fake_wechat_app(args.app_id, args.secret, cs_quota=args.cs_quota, name="fake_wechat")
    print(f"fake WeChat API on http://{args.host}:{args.port}/cgi-bin/ (app id {args.app_id})")
    app.run(host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
