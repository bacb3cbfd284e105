"""HTTP API for POS tills and the web shop: orders, returns, coupon redemption, points, member codes.

Every entry point authenticates the caller by its API key, checks the body
before anything is written and answers errors as JSON
``{"error": code, "message": ..., ...params}``. The services run in a worker
thread (:func:`loyalty.db.arun`), one transaction each, so a refused request
leaves nothing behind and the event loop never blocks.

Run it with ``python -m loyalty.apps.api --host 127.0.0.1 --port 8081`` or
:func:`serve`. The contract is in docs/api.md and, as OpenAPI 3.1, at
``/api/v1/openapi.json`` (loyalty/apps/openapi.py), rendered at ``/api/v1/docs``.
Around it: ``/api/v1/health`` (liveness), ``/api/v1/ready`` (the database
answers) and ``/metrics`` (Prometheus).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import mimetypes
import re
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler
from sanic.request import Request
from sanic.response import BaseHTTPResponse, HTTPResponse
from sqlalchemy import text
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.apikeys import service as apikeys
from loyalty.apps.metrics import ApiMetrics, use_multiprocess_dir
from loyalty.apps.openapi import build_spec
from loyalty.common import ascii_digits, yuan_to_fen
from loyalty.coupons import service as coupons
from loyalty.errors import InvalidInput, LoyaltyError, NotFound, Unauthorized, Unavailable
from loyalty.identity import member_codes
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.points import service as points

log = logging.getLogger("loyalty.apps.api")

PREFIX = "/api/v1"
# Orders of 500 lines fit in well under this; anything bigger is refused before it is read.
MAX_BODY_BYTES = 256 * 1024
READY_TIMEOUT_S = 2.0
# The page's files, installed by `make api-docs` (npm ci in loyalty/apps/apidocs, not in git).
DOCS_DIR = Path(__file__).parent / "apidocs" / "node_modules" / "swagger-ui-dist"
DOCS_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-16x16.png", "favicon-32x32.png"})
REDEEM_FIELDS = frozenset({"code", "order_ref", "order_amount", "store_code"})
MEMBER_CODE_FIELDS = frozenset({"code", "member_id"})
MAX_ORDER_REF = 64
MAX_RECENT = 50
_MAX_ID = orders.MAX_MEMBER_ID
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")

# Codes for errors Sanic raises itself, before a handler runs.
_SANIC_CODES = {
    400: "bad_request",
    404: "no_such_endpoint",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    417: "bad_request",
    503: "unavailable",
}


class UnsupportedMediaType(InvalidInput):
    """The body is not declared as JSON in UTF-8."""

    code = "unsupported_media_type"
    http_status = 415


# --------------------------------------------------------------------------- responses


def _encode(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(
        json.dumps(body, ensure_ascii=False, default=_encode),
        status=status,
        headers=headers,
        content_type="application/json; charset=utf-8",
    )


def _error_body(request: Request, exc: BaseException) -> tuple[int, dict[str, Any]]:
    if isinstance(exc, LoyaltyError):
        return exc.http_status, exc.as_dict()
    if isinstance(exc, DataError):
        # The database refused a value (e.g. a number beyond its column's range);
        # the transaction was rolled back. Its message holds the SQL parameters:
        # never log or echo it.
        log.warning("api value refused by the database: %s", type(exc.orig).__name__)
        return 400, {"error": "invalid_value", "message": "A value is out of the accepted range."}
    if isinstance(exc, PoolTimeout):
        log.error("api database pool exhausted")
        return 503, Unavailable("The service is busy, nothing was written; retry shortly.").as_dict()
    if isinstance(exc, SanicException):
        status = int(getattr(exc, "status_code", 500) or 500)
        code = _SANIC_CODES.get(status, "bad_request" if status < 500 else "server_error")
        if code == "body_too_large" and "header" in str(exc).lower():
            return status, {"error": "headers_too_large", "message": "The request headers are too large."}
        if code == "body_too_large":
            limit = request.app.config.REQUEST_MAX_SIZE
            return status, {"error": code, "message": f"The request is larger than {limit} bytes.",
                            "limit": limit}
        return status, {"error": code, "message": str(exc) or code}
    if isinstance(exc, SQLAlchemyError):
        log.error("api database error: %s", type(getattr(exc, "orig", exc)).__name__)
    else:
        log.error("api unexpected error path=%s", request.path, exc_info=exc)
    return 500, {"error": "internal_error",
                 "message": "Something went wrong on our side; retrying with the same body is safe."}


class _JsonErrors(ErrorHandler):
    """Every error, Sanic's own included, as ``{"error": code, "message": ...}``."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        status, body = _error_body(request, exception)
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="loyalty"'
        elif status == 503:
            headers["Retry-After"] = "5"
        try:
            request.ctx.error = body["error"]
        except AttributeError:  # a placeholder request when the head itself was broken
            pass
        return _json(body, status, headers)


# --------------------------------------------------------------------------- request checks


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send the key as 'Authorization: Bearer <key>'.", code="invalid_api_key")
        return token.strip()
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("An API key is needed: 'Authorization: Bearer <key>'.", code="missing_api_key")
    return key


async def _authenticate(request: Request) -> str:
    """The source the request's key belongs to; 401 for a missing, unknown or inactive key."""
    key = _presented_key(request)
    found = await db.arun(apikeys.identify, key, readonly=True)
    if found is None:
        log.info("api auth refused %s", apikeys.key_hint(key))
        raise Unauthorized("This API key is not valid.", code="invalid_api_key")
    if not found.active:
        log.info("api auth refused source=%s (inactive)", found.source)
        raise Unauthorized("This API key has been deactivated.", code="inactive_api_key")
    request.ctx.source = found.source
    return found.source


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A field given twice is ambiguous, and would make two "identical" orders hash differently.
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidInput(f"The field {k!r} is given twice.", code="duplicate_field", field=k)
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise InvalidInput(f"{name} is not a number JSON allows.", code="invalid_json")


def _json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a clear 400/415."""
    mime, _, params = request.headers.get("content-type", "").partition(";")
    if mime.strip().lower() != "application/json":
        raise UnsupportedMediaType("Send the body as 'Content-Type: application/json'.")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("The body must be UTF-8.")
    raw = request.body
    if not raw:
        raise InvalidInput("The body is empty; send a JSON object.", code="empty_body")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise InvalidInput("The body is not UTF-8.", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
            code="invalid_json", line=exc.lineno, column=exc.colno,
        ) from None
    except ValueError:  # e.g. an integer of thousands of digits (Python's int size guard)
        raise InvalidInput("The body holds a number too long to read.", code="invalid_json") from None
    except RecursionError:
        raise InvalidInput("The body is nested too deeply.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_body")
    _check_strings(data)
    return data


def _check_strings(value: Any) -> None:
    # JSON escapes can smuggle in what no field may hold and the database cannot
    # store: NUL (refused by PostgreSQL) and lone surrogates (not encodable as UTF-8).
    if isinstance(value, str):
        if _BAD_CHARS.search(value):
            raise InvalidInput("The body holds a NUL or an unpaired surrogate escape.", code="invalid_json")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k)
            _check_strings(v)
    elif isinstance(value, list):
        for v in value:
            _check_strings(v)


def _text_field(body: dict[str, Any], name: str, max_len: int, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name} is required.", code="missing_field", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string.", code="invalid_field", field=name)
    value = value.strip()
    if len(value) > max_len:
        raise InvalidInput(f"{name} is longer than {max_len} characters.", code="invalid_field", field=name)
    return value


# --------------------------------------------------------------------------- handlers


async def health(request: Request) -> HTTPResponse:
    """Liveness: 200 while the process answers. No key, no database (see :func:`ready`)."""
    return _json({"status": "ok"})


def _select_one(s: Session) -> None:
    s.execute(text("SELECT 1")).one()


async def ready(request: Request) -> HTTPResponse:
    """Readiness: 200 when the database answers ``SELECT 1`` in time, else 503 with a ``reason``."""
    try:
        await asyncio.wait_for(db.arun(_select_one, readonly=True, attempts=1), READY_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise Unavailable("The database did not answer in time.", reason="database_timeout") from None
    except (Unavailable, SQLAlchemyError) as exc:
        log.warning("api not ready: %s", type(exc).__name__)
        raise Unavailable("The database cannot be reached.", reason="database_unreachable") from None
    return _json({"status": "ready", "database": "ok"})


async def openapi_spec(request: Request) -> HTTPResponse:
    """This API's OpenAPI 3.1 document (no key)."""
    return _json(request.app.ctx.spec)


_DOCS_INIT = (
    'window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#ui", deepLinking: true, validatorUrl: null});'
)
_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Loyalty API for tills and the web shop</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<div id="ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script>{_DOCS_INIT}</script>
</body>
</html>
"""
# Everything from this server: the page works offline and cannot load anything from elsewhere.
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    f"script-src 'self' 'sha256-{base64.b64encode(hashlib.sha256(_DOCS_INIT.encode()).digest()).decode()}'"
)


def _docs_dir(request: Request) -> Path:
    folder: Path = request.app.ctx.docs_dir
    if not (folder / "swagger-ui-bundle.js").is_file():
        raise Unavailable("The API docs page is not built: run 'make api-docs' "
                          "(npm ci --prefix loyalty/apps/apidocs). The spec is at /api/v1/openapi.json.",
                          code="docs_not_built")
    return folder


async def docs_page(request: Request) -> HTTPResponse:
    """The spec as a readable page (Swagger UI from local files); 503 when they are not installed."""
    _docs_dir(request)
    return HTTPResponse(_DOCS_PAGE, content_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": _DOCS_CSP})


async def docs_asset(request: Request, name: str) -> HTTPResponse:
    """One of the page's files (a fixed list: nothing else of the folder is served)."""
    folder = _docs_dir(request)
    if name not in DOCS_ASSETS:
        raise NotFound("No such file.", code="no_such_asset")
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return HTTPResponse((folder / name).read_bytes(), content_type=mime,
                        headers={"Cache-Control": "public, max-age=86400"})


async def metrics_page(request: Request) -> HTTPResponse:
    """Prometheus metrics (every worker's) in the text format."""
    body, content_type = request.app.ctx.metrics.render()
    return HTTPResponse(body, content_type=content_type)


async def post_order(request: Request) -> HTTPResponse:
    """Record a purchase for the caller's source: 201 the first time, 200 on a replay."""
    source = await _authenticate(request)
    payload = _json_body(request)
    result = await db.arun(orders.record_order, source, payload)
    return _json(result, 200 if result.get("replayed") else 201)


async def post_return(request: Request) -> HTTPResponse:
    """Record a return and claw back its points: 201 the first time, 200 on a replay."""
    source = await _authenticate(request)
    payload = _json_body(request)
    result = await db.arun(orders.record_return, source, payload)
    return _json(result, 200 if result.get("replayed") else 201)


async def redeem_coupon(request: Request) -> HTTPResponse:
    """Use a coupon code on an order, exactly once; the same order asking again gets the same answer."""
    source = await _authenticate(request)
    body = _json_body(request)
    unknown = set(body) - REDEEM_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}", code="unknown_field",
                           fields=sorted(unknown))
    code = _text_field(body, "code", 20)
    ref = _text_field(body, "order_ref", MAX_ORDER_REF)
    store = _text_field(body, "store_code", 32, required=False)
    amount = body.get("order_amount")
    if amount is None:
        raise InvalidInput("order_amount is required.", code="missing_field", field="order_amount")
    if isinstance(amount, bool) or not isinstance(amount, (str, int, float)):
        raise InvalidInput("order_amount must be a yuan amount like \"128.50\".", code="invalid_amount",
                           field="order_amount")
    amount_fen = yuan_to_fen(amount, "order_amount")
    assert code is not None and ref is not None
    # The reference is kept per source, so one system can never replay (and so
    # learn about) a redemption another system made.
    now = db.utcnow()
    r = await db.arun(
        coupons.redeem, code, order_ref=f"{source}:{ref}", order_amount_fen=amount_fen,
        store_code=store.upper() if store else None, now=now,
    )
    return _json({
        "code": r.code, "campaign_code": r.campaign_code, "kind": r.kind, "discount": r.discount,
        "gift_sku": r.gift_sku, "order_ref": ref, "redeemed_at": r.redeemed_at,
        # The service answers a replay with the first redemption and its time.
        "replayed": r.redeemed_at != now,
    })


def _points_view(s: Session, member_id: int, recent: int) -> dict[str, Any]:
    card = membership.card(s, member_id)  # member_not_found for unknown or closed accounts
    summ = points.summary(s, member_id, recent=recent)
    return {
        "member_id": member_id,
        "tier": card.tier,
        "balance": summ.balance,
        "expiring_soon": summ.expiring_soon,
        "next_expiry": summ.next_expiry,
        "next_expiry_points": summ.next_expiry_points,
        "recent": [
            {"kind": e.kind, "delta": e.delta, "balance_after": e.balance_after, "at": e.at, "reason": e.reason}
            for e in summ.recent
        ],
    }


async def member_points(request: Request, member_id: int) -> HTTPResponse:
    """A member's balance, next expiry and latest ledger entries (read-only, for tills)."""
    await _authenticate(request)
    unknown = set(request.args) - {"recent"}
    if unknown:
        raise InvalidInput(f"Unknown parameters: {', '.join(sorted(unknown))}", code="unknown_field",
                           fields=sorted(unknown))
    raw = request.args.get("recent", "5")
    if not ascii_digits(raw) or not 0 <= int(raw) <= MAX_RECENT:
        raise InvalidInput(f"recent must be a whole number 0-{MAX_RECENT}.", code="invalid_field",
                           field="recent")
    if not 0 < member_id <= _MAX_ID:
        raise NotFound("No such member.", code="member_not_found")
    view = await db.arun(_points_view, member_id, int(raw), readonly=True)
    return _json(view)


def _resolve_member_code(s: Session, code: str, source: str, member_id: int | None, now: datetime) -> dict[str, Any]:
    mid = member_codes.resolve(s, code, source=source, member_id=member_id, now=now)
    card = membership.card(s, mid)
    return {"member_id": mid, "tier": card.tier, "points": card.points, "phone_masked": card.phone_masked}


async def resolve_member_code(request: Request) -> HTTPResponse:
    """The member behind a member code the cashier just scanned; the code is used up (one use)."""
    source = await _authenticate(request)
    body = _json_body(request)
    unknown = set(body) - MEMBER_CODE_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}", code="unknown_field",
                           fields=sorted(unknown))
    code = body.get("code")
    if code is None:
        raise InvalidInput("code is required.", code="missing_field", field="code")
    if not isinstance(code, str) or len(code) > 32:
        raise InvalidInput("This is not a member code.", code="invalid_member_code")
    member_id = body.get("member_id")
    if member_id is not None and (isinstance(member_id, bool) or not isinstance(member_id, int)
                                  or not 0 < member_id <= _MAX_ID):
        raise InvalidInput("member_id must be a member's id.", code="invalid_field", field="member_id")
    result = await db.arun(_resolve_member_code, code.strip(), source, member_id, db.utcnow())
    return _json(result)


# --------------------------------------------------------------------------- app


async def _started(request: Request) -> None:
    # handle_exception runs request middleware a second time; keep the first start time.
    if not hasattr(request.ctx, "t0"):
        request.ctx.t0 = time.perf_counter()


def route_template(request: Request) -> str:
    """The route a request matched, as the spec writes it (``/api/v1/members/{member_id}/points``)."""
    route = getattr(request, "route", None)
    if route is None:
        return "unmatched"  # 404s and broken requests: one label, not one per URL tried
    return "/" + re.sub(r"<(\w+)(:[^>]*)?>", r"{\1}", route.path.lstrip("/"))


async def _log_response(request: Request, response: BaseHTTPResponse) -> None:
    # Path only: no query string, body, key or phone number reaches the log.
    t0 = getattr(request.ctx, "t0", None)
    seconds = time.perf_counter() - t0 if t0 is not None else 0.0
    ms = seconds * 1000 if t0 is not None else -1.0
    request.app.ctx.metrics.observe(request.method, route_template(request), response.status, seconds)
    log.info(
        "api request method=%s path=%s status=%s source=%s error=%s ms=%.1f",
        request.method, request.path, response.status, getattr(request.ctx, "source", "-"),
        getattr(request.ctx, "error", "-"), ms,
    )


def create_app(name: str = "loyalty-api", *, max_body: int = MAX_BODY_BYTES, docs_dir: Path | None = None) -> Sanic:
    """The API as a Sanic app; ``name`` must be unique per process (Sanic's rule)."""
    app = Sanic(name, error_handler=_JsonErrors(), configure_logging=False)
    app.ctx.spec = build_spec(max_body=max_body, max_recent=MAX_RECENT)
    app.ctx.docs_dir = docs_dir or DOCS_DIR
    app.ctx.metrics = ApiMetrics()
    app.config.REQUEST_MAX_SIZE = max_body
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False  # replaced by _log_response, which masks what it must
    app.register_middleware(_started, "request")
    app.register_middleware(_log_response, "response")
    app.add_route(health, f"{PREFIX}/health", methods=["GET"])
    app.add_route(ready, f"{PREFIX}/ready", methods=["GET"])
    app.add_route(openapi_spec, f"{PREFIX}/openapi.json", methods=["GET"])
    app.add_route(docs_page, f"{PREFIX}/docs", methods=["GET"])
    app.add_route(docs_asset, f"{PREFIX}/docs/assets/<name:str>", methods=["GET"])
    app.add_route(metrics_page, "/metrics", methods=["GET"])
    app.add_route(post_order, f"{PREFIX}/orders", methods=["POST"])
    app.add_route(post_return, f"{PREFIX}/returns", methods=["POST"])
    app.add_route(redeem_coupon, f"{PREFIX}/coupons/redeem", methods=["POST"])
    app.add_route(member_points, f"{PREFIX}/members/<member_id:int>/points", methods=["GET"])
    app.add_route(resolve_member_code, f"{PREFIX}/member-codes/resolve", methods=["POST"])
    return app


def serve(host: str = "127.0.0.1", port: int = 8081, *, workers: int = 1) -> None:
    """Serve the API until interrupted (each worker opens its own database pool).

    With several workers the metrics of all of them are kept in files (prometheus_client's
    multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``); the folder is emptied first.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if workers > 1:
        log.info("api metrics of %d workers in %s", workers, use_multiprocess_dir())
    app = create_app()
    app.run(host=host, port=port, workers=workers, access_log=False, motd=False)


def main(argv: list[str] | None = None) -> None:
    """``python -m loyalty.apps.api --host 127.0.0.1 --port 8081 [--workers N]``."""
    p = argparse.ArgumentParser(prog="python -m loyalty.apps.api",
                                description="Loyalty HTTP API for tills and the web shop")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    serve(a.host, a.port, workers=a.workers)


if __name__ == "__main__":
    main()
