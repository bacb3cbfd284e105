"""A local stand-in for Aliyun's SMS API, for development and tests.

It takes ``SendSms`` requests as Aliyun does (form or query parameters,
checked signature, fresh nonce and timestamp, Aliyun's JSON answers and error
codes) and records each message instead of sending it. A developer reads the
codes on its page (``GET /``); tests read ``GET /_fake/messages`` and can make
the next sends fail (``POST /_fake/fail``). It never logs a code.

Run: ``python -m loyalty.sms --port 8090`` (``make run`` starts it when no SMS
credentials are set).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from loyalty.sms.aliyun import API_VERSION, signature

log = logging.getLogger(__name__)

FAKE_KEY_ID = "fake-key"
FAKE_SECRET = "fake-secret"
_PHONE = re.compile(r"^1[3-9]\d{9}$")
MAX_SKEW = 15 * 60  # Aliyun refuses requests whose Timestamp is further off


@dataclass
class FakeSmsState:
    """What the fake remembers; tests read it through ``/_fake/``."""

    key_id: str = FAKE_KEY_ID
    secret: str = FAKE_SECRET
    messages: list[dict[str, Any]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    failures: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0


def _state(request: Request) -> FakeSmsState:
    state: FakeSmsState = request.app.ctx.fake
    return state


def _answer(code: str, message: str, status: int = 200, **extra: Any) -> HTTPResponse:
    return response.json({"RequestId": uuid.uuid4().hex.upper(), "Code": code, "Message": message, **extra},
                         status=status)


def _params(request: Request) -> dict[str, str]:
    merged = {k: v[0] for k, v in request.args.items() if v}
    merged.update({k: v[0] for k, v in (request.form or {}).items() if v})
    return merged


def _mask(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "****"


def _refused(state: FakeSmsState, p: dict[str, str]) -> HTTPResponse | None:
    """Aliyun's checks, in its order: credentials, signature, freshness, then the message."""
    if p.get("AccessKeyId") != state.key_id:
        return _answer("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
    if p.get("SignatureMethod") != "HMAC-SHA1" or p.get("SignatureVersion") != "1.0":
        return _answer("InvalidParameter", "SignatureMethod or SignatureVersion is invalid.", 400)
    if p.get("Signature") != signature(p, state.secret, "POST"):
        return _answer("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)
    try:
        at = datetime.strptime(p.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return _answer("InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400)
    if abs(at.timestamp() - time.time()) > MAX_SKEW:
        return _answer("InvalidTimeStamp.Expired", "Specified time stamp or date header is expired.", 400)
    nonce = p.get("SignatureNonce", "")
    if not nonce or nonce in state.nonces:
        return _answer("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
    state.nonces.add(nonce)
    if p.get("Action") != "SendSms" or p.get("Version") != API_VERSION:
        return _answer("InvalidAction.NotFound", "Specified api is not found.", 404)
    if not _PHONE.match(p.get("PhoneNumbers", "")):
        return _answer("isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile number")
    if not p.get("SignName"):
        return _answer("isv.SMS_SIGNATURE_ILLEGAL", "invalid sign name")
    if not p.get("TemplateCode"):
        return _answer("isv.SMS_TEMPLATE_ILLEGAL", "invalid template")
    try:
        values = json.loads(p.get("TemplateParam") or "{}")
        assert isinstance(values, dict)
    except (ValueError, AssertionError):
        return _answer("isv.INVALID_JSON_PARAM", "TemplateParam is not a JSON object")
    return None


async def send_sms(request: Request) -> HTTPResponse:
    """Aliyun's ``SendSms`` (POST form or query): checked, recorded, never sent."""
    state = _state(request)
    p = _params(request)
    refused = _refused(state, p)
    if refused is not None:
        state.refused += 1
        return refused
    for failure in state.failures:
        if failure.get("phone") in (None, p["PhoneNumbers"]):
            failure["times"] = int(failure.get("times", 1)) - 1
            if failure["times"] <= 0:
                state.failures.remove(failure)
            return _answer(str(failure.get("code", "isp.SYSTEM_ERROR")), "injected failure")
    biz_id = f"{len(state.messages) + 1:06d}^{uuid.uuid4().hex[:10]}"
    state.messages.append({
        "biz_id": biz_id, "phone": p["PhoneNumbers"], "sign_name": p["SignName"],
        "template_code": p["TemplateCode"], "params": json.loads(p.get("TemplateParam") or "{}"),
        "out_id": p.get("OutId"), "received_at": time.time(),
    })
    log.info("fake sms: message to %s recorded (template %s)", _mask(p["PhoneNumbers"]), p["TemplateCode"])
    return _answer("OK", "OK", BizId=biz_id)


async def page(request: Request) -> HTTPResponse:
    """The messages a developer would have received, newest first (codes visible here only)."""
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>【{}】</td><td><b>{}</b></td></tr>".format(
            time.strftime("%H:%M:%S", time.localtime(m["received_at"])), html.escape(m["phone"]),
            html.escape(m["sign_name"]), html.escape(", ".join(f"{k}={v}" for k, v in m["params"].items())))
        for m in reversed(_state(request).messages)
    )
    return response.html(
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3><title>Fake SMS</title>"
        "<h1>Fake SMS gateway</h1><p>Messages the assistant asked to send (nothing was sent).</p>"
        f"<table border=1 cellpadding=4><tr><th>time</th><th>to</th><th>sign</th><th>template values</th></tr>"
        f"{rows}</table>"
    )


async def fake_messages(request: Request) -> HTTPResponse:
    phone = request.args.get("phone")
    found = [m for m in _state(request).messages if phone in (None, m["phone"])]
    return response.json({"messages": found, "refused": _state(request).refused})


async def fake_fail(request: Request) -> HTTPResponse:
    """Queue a refusal: {"code": "isv.BUSINESS_LIMIT_CONTROL", "times": 1, "phone": null}."""
    state = _state(request)
    state.failures.append({"times": 1, **(request.json or {})})
    return response.json({"queued": len(state.failures)})


async def fake_reset(request: Request) -> HTTPResponse:
    state = _state(request)
    state.messages.clear()
    state.failures.clear()
    state.refused = 0
    return response.json({"reset": True})


async def health(request: Request) -> HTTPResponse:
    return response.json({"status": "ok"})


ROUTES = (
    ("POST", "/", send_sms),
    ("GET", "/", page),
    ("GET", "/_fake/messages", fake_messages),
    ("GET", "/_fake/health", health),
    ("POST", "/_fake/fail", fake_fail),
    ("POST", "/_fake/reset", fake_reset),
)


def create_fake_sms_app(name: str | None = None, *, key_id: str = FAKE_KEY_ID, secret: str = FAKE_SECRET) -> Sanic:
    """A Sanic app imitating ``https://dysmsapi.aliyuncs.com/``; state in ``app.ctx.fake``."""
    app = Sanic(name or f"fake_sms_{uuid.uuid4().hex[:8]}", configure_logging=False)
    app.ctx.fake = FakeSmsState(key_id=key_id, secret=secret)
    for method, path, handler in ROUTES:
        app.add_route(handler, path, methods=[method], name=f"{handler.__name__}_{method.lower()}")
    return app


def main(argv: list[str] | None = None) -> None:
    """Command line: serve the fake on a loopback port."""
    parser = argparse.ArgumentParser(prog="python -m loyalty.sms", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_fake_sms_app("fake_sms")
    print(f"fake SMS gateway on http://{args.host}:{args.port}/ (codes are shown on that page)", flush=True)
    app.run(host=args.host, port=args.port, access_log=False, motd=False)
