"""The OpenAPI 3.1 description of the tills' HTTP API (loyalty/apps/api.py).

Served at ``GET /api/v1/openapi.json`` and rendered at ``/api/v1/docs``. It is
kept true by tests/loyalty/test_api_spec.py (the spec's methods and paths equal
the app's routes; real answers validate against the response schemas) and by
tests/loyalty/test_api_fuzz.py (requests generated from the request schemas get
only the statuses and error codes listed here).

Each response that refuses lists the ``error`` codes it can carry in
``x-error-codes``; every error body has the shape of ``#/components/schemas/Error``.
"""

from __future__ import annotations

from typing import Any

from loyalty.orders.service import MAX_LINES, MAX_MEMBER_ID

VERSION = "1.0.0"
MAX_CODE = 20
MAX_TEXT = 64
MAX_STORE = 32


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_MONEY = {
    "description": 'Yuan with at most two decimals, best as a string ("128.50"); 0 to 100000000.',
    "anyOf": [
        {"type": "string", "pattern": r"^[0-9]{1,9}(\.[0-9]{1,2})?$", "maxLength": 12},
        {"type": "number", "minimum": 0, "maximum": 100_000_000},
    ],
    "examples": ["128.50"],
}
_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
_STORE = _nullable({"type": "string", "minLength": 1, "maxLength": MAX_STORE, "description": "a known store code"})

_ORDER_FIELDS: dict[str, Any] = {
    "external_id": {**_TEXT, "description": "Your order number: the idempotency key, per source."},
    "placed_at": {"type": "string", "format": "date-time",
                  "description": "When it was paid, ISO 8601 with a zone; at most 10 minutes ahead."},
    "amount": _MONEY,
    "store_code": _STORE,
    "member_id": _nullable({"type": "integer", "minimum": 1, "maximum": MAX_MEMBER_ID}),
    "phone": _nullable({"type": "string", "maxLength": 20, "description": "a mainland mobile number"}),
    "channel": {"type": "string", "enum": ["pos", "online"], "default": "pos"},
    "lines": {
        "type": "array",
        "maxItems": MAX_LINES,
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["sku", "qty", "unit_price"],
            "properties": {
                "sku": _TEXT,
                "qty": {"type": "integer", "minimum": 1, "maximum": 10_000},
                "unit_price": _MONEY,
            },
        },
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every refusal: a stable code, a message for people, and details where useful.",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "pattern": "^[a-z_]+$"},
            "message": {"type": "string", "minLength": 1},
            "field": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "string"}},
            "limit": {"type": "integer"},
            "line": {"type": "integer"},
            "column": {"type": "integer"},
            "returnable": {"type": "string"},
            "threshold": {"type": "string"},
            "external_id": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "Health": {
        "type": "object", "required": ["status"], "additionalProperties": False,
        "properties": {"status": {"const": "ok"}},
    },
    "Ready": {
        "type": "object", "required": ["status", "database"], "additionalProperties": False,
        "properties": {"status": {"const": "ready"}, "database": {"const": "ok"}},
    },
    "Order": {
        "type": "object",
        "additionalProperties": False,
        "required": ["external_id", "placed_at", "amount"],
        "properties": _ORDER_FIELDS,
        "examples": [{
            "external_id": "POS-SH01-20260301-0042", "placed_at": "2026-03-01T20:15:00+08:00",
            "amount": "128.50", "store_code": "SH01", "member_id": 17, "channel": "pos",
            "lines": [{"sku": "SK-1001", "qty": 2, "unit_price": "64.25"}],
        }],
    },
    "OrderResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["order_id", "external_id", "member_id", "points_earned", "balance", "tier", "replayed"],
        "properties": {
            "order_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "member_id": {"type": ["integer", "null"]},
            "points_earned": {"type": "integer", "minimum": 0},
            "balance": {"type": ["integer", "null"]},
            "tier": {"type": ["string", "null"]},
            "replayed": {"type": "boolean"},
        },
    },
    "Return": {
        "type": "object",
        "additionalProperties": False,
        "required": ["external_id", "placed_at", "amount", "original_external_id"],
        "properties": {
            **_ORDER_FIELDS,
            "external_id": {**_TEXT, "description": "Your return number: the idempotency key, per source."},
            "amount": {**_MONEY, "description": "What is refunded, yuan."},
            "original_external_id": {**_TEXT, "description": "The order returned."},
            "original_source": _nullable({"type": "string", "minLength": 1, "maxLength": MAX_STORE,
                                          "description": "The source of the order when it is not yours."}),
        },
        "examples": [{"external_id": "RET-0007", "placed_at": "2026-03-05T11:00:00+08:00", "amount": "50.00",
                      "original_external_id": "POS-SH01-20260301-0042"}],
    },
    "ReturnResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["return_id", "external_id", "member_id", "points_clawed_back", "shortfall", "balance",
                     "replayed"],
        "properties": {
            "return_id": {"type": "integer"},
            "external_id": {"type": "string"},
            "member_id": {"type": ["integer", "null"]},
            "points_clawed_back": {"type": "integer", "minimum": 0},
            "shortfall": {"type": "integer", "minimum": 0},
            "balance": {"type": ["integer", "null"]},
            "replayed": {"type": "boolean"},
        },
    },
    "Redemption": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "order_ref", "order_amount"],
        "properties": {
            "code": {"type": "string", "minLength": 1, "maxLength": MAX_CODE,
                     "description": "The coupon code, any case."},
            "order_ref": {**_TEXT, "description": "Your order: with the code and your source, the idempotency key."},
            "order_amount": _MONEY,
            "store_code": _STORE,
        },
        "examples": [{"code": "K7Q2M9XW", "order_ref": "POS-SH01-20260301-0042", "order_amount": "150.00",
                      "store_code": "SH01"}],
    },
    "RedemptionResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "campaign_code", "kind", "discount", "gift_sku", "order_ref", "redeemed_at",
                     "replayed"],
        "properties": {
            "code": {"type": "string"},
            "campaign_code": {"type": "string"},
            "kind": {"type": "string"},
            "discount": {"type": "string", "description": "Yuan to take off; \"0.00\" for a gift."},
            "gift_sku": {"type": ["string", "null"]},
            "order_ref": {"type": "string"},
            "redeemed_at": {"type": "string", "format": "date-time"},
            "replayed": {"type": "boolean"},
        },
    },
    "MemberCodeQuery": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code"],
        "properties": {
            "code": {"type": "string", "minLength": 1, "maxLength": 32,
                     "description": "The digits the shopper shows (`88` + 8 digits), or the QR's content."},
            "member_id": {"type": "integer", "minimum": 1, "maximum": 2147483647,
                          "description": "The member already on the till's screen: the code must be theirs."},
        },
        "examples": [{"code": "8812345678"}],
    },
    "MemberCodeResult": {
        "type": "object",
        "additionalProperties": False,
        "required": ["member_id", "tier", "points", "phone_masked"],
        "properties": {
            "member_id": {"type": "integer"},
            "tier": {"type": "string"},
            "points": {"type": "integer"},
            "phone_masked": {"type": "string", "description": "e.g. 138****8000"},
        },
    },
    "Points": {
        "type": "object",
        "additionalProperties": False,
        "required": ["member_id", "tier", "balance", "expiring_soon", "next_expiry", "next_expiry_points", "recent"],
        "properties": {
            "member_id": {"type": "integer"},
            "tier": {"type": "string"},
            "balance": {"type": "integer"},
            "expiring_soon": {"type": "integer"},
            "next_expiry": {"type": ["string", "null"], "format": "date",
                            "description": "The last day (Asia/Shanghai) the next lot can be used."},
            "next_expiry_points": {"type": "integer"},
            "recent": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["kind", "delta", "balance_after", "at", "reason"],
                    "properties": {
                        "kind": {"type": "string"},
                        "delta": {"type": "integer"},
                        "balance_after": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "reason": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
}

_BODY_ERRORS = ["empty_body", "invalid_json", "invalid_body", "duplicate_field", "unknown_field",
                "missing_field", "invalid_field", "invalid_amount", "invalid_value", "bad_request"]
_AUTH_ERRORS = ["missing_api_key", "invalid_api_key", "inactive_api_key"]


def _error(description: str, codes: list[str], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": f"{description} `error` is one of: {', '.join(codes)}.",
        "x-error-codes": codes,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    if headers:
        out["headers"] = headers
    return out


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying with the same body.",
                                "schema": {"type": "integer"}}}
_UNAVAILABLE = _error("The database is down or busy; nothing was written. Retry with the same body.",
                      ["unavailable"], _RETRY_AFTER)
_INTERNAL = _error("A bug on our side; retrying with the same body is safe.", ["internal_error"])


def _protected(extra: dict[str, dict[str, Any]], *, body_limit: int | None) -> dict[str, Any]:
    """The refusals every endpoint behind a key shares, plus ``extra``."""
    responses: dict[str, Any] = {
        "401": _error("No valid key.", _AUTH_ERRORS, {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="loyalty"'}}),
        "413": _error("The request is too large" + (f" (over {body_limit} bytes)." if body_limit else "."),
                      ["body_too_large", "headers_too_large"] if body_limit else ["headers_too_large"]),
        "500": _INTERNAL,
        "503": _UNAVAILABLE,
    }
    responses.update(extra)
    return dict(sorted(responses.items()))


def _write(summary: str, description: str, request: str, ok: dict[str, Any], *, body_limit: int,
           bad: list[str], not_found: list[str], conflict: list[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {
        **ok,
        "400": _error("The body is not a valid request.", _BODY_ERRORS + bad),
        "409": _error("The request is fine but cannot be done.", conflict),
        "415": _error("The body is not JSON in UTF-8.", ["unsupported_media_type"]),
    }
    if not_found:
        extra["404"] = _error("Something the body names does not exist.", not_found)
    return {
        "summary": summary,
        "description": description,
        "security": [{"bearerKey": []}, {"headerKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(request)}}},
        "responses": _protected(extra, body_limit=body_limit),
    }


_IDEMPOTENCY = (
    "Every write can be retried with the same body after a timeout, a 503 or a lost connection. "
    "Orders and returns are idempotent per (source, `external_id`): the first post answers 201, a replay "
    "200 with the same body and `\"replayed\": true`; the same `external_id` with other content is "
    "409 `idempotency_conflict`. A coupon redemption is idempotent per (code, source, `order_ref`): the "
    "same order gets the first answer again (200, `\"replayed\": true`), any other order 409 "
    "`already_redeemed`. The payload is compared as JSON (`\"128.50\"` and `128.5` differ). Concurrent "
    "duplicates get one effect and the first answer. A refused request writes nothing."
)


def build_spec(*, max_body: int, max_recent: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API with the given body and ``recent`` limits."""
    idem = {"x-idempotency": _IDEMPOTENCY}
    paths: dict[str, Any] = {
        "/api/v1/health": {"get": {
            "summary": "Liveness: the process answers (no database, no key)",
            "operationId": "health",
            "responses": {"200": _ok("The process is up.", "Health")},
        }},
        "/api/v1/ready": {"get": {
            "summary": "Readiness: the database answers SELECT 1 within 2 s (no key)",
            "operationId": "ready",
            "responses": {
                "200": _ok("Ready to serve.", "Ready"),
                "503": _error("Not ready; `reason` says why (database_timeout, database_unreachable).",
                              ["unavailable"], _RETRY_AFTER),
            },
        }},
        "/api/v1/openapi.json": {"get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}},
        }},
        "/api/v1/docs": {"get": {
            "summary": "This document as a readable page (Swagger UI, served locally)",
            "operationId": "docs",
            "responses": {
                "200": {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}},
                "503": _error("The page's files are not installed (run `make api-docs`).", ["docs_not_built"]),
            },
        }},
        "/api/v1/docs/assets/{name}": {"get": {
            "summary": "The page's script, style sheet and icons",
            "operationId": "docs_asset",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "The file",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                "404": _error("No such file.", ["no_such_asset"]),
                "503": _error("The page's files are not installed (run `make api-docs`).", ["docs_not_built"]),
            },
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics of this process (all workers)",
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text format 0.0.4",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/api/v1/orders": {"post": {
            "operationId": "post_order",
            **_write(
                "Record a purchase; the member earns points",
                "Points = amount × points per yuan × tier multiplier, rounded down. Neither `member_id` nor "
                "`phone`: an anonymous order (recorded, no points).",
                "Order",
                {"201": _ok("Recorded.", "OrderResult"), "200": _ok("A replay: the first answer.", "OrderResult")},
                body_limit=max_body,
                bad=["invalid_time", "invalid_phone", "unknown_member", "unknown_store"],
                not_found=[], conflict=["idempotency_conflict"],
            ),
            **idem,
        }},
        "/api/v1/returns": {"post": {
            "operationId": "post_return",
            **_write(
                "Record a return; the points it earned are taken back in proportion",
                "`amount` is what is refunded; all returns of an order together cannot exceed it. "
                "`shortfall` is what could not be taken back because the member had spent it.",
                "Return",
                {"201": _ok("Recorded.", "ReturnResult"), "200": _ok("A replay: the first answer.", "ReturnResult")},
                body_limit=max_body,
                bad=["invalid_time", "invalid_phone", "unknown_member", "unknown_store", "return_exceeds_order"],
                not_found=["unknown_order"], conflict=["idempotency_conflict"],
            ),
            **idem,
        }},
        "/api/v1/coupons/redeem": {"post": {
            "operationId": "redeem_coupon",
            **_write(
                "Use a coupon code on an order, exactly once",
                "`discount` is the yuan to take off (\"0.00\" for a gift coupon, whose `gift_sku` is handed over).",
                "Redemption",
                {"200": _ok("Redeemed, or a replay of the same order's redemption.", "RedemptionResult")},
                body_limit=max_body,
                bad=["unknown_store", "invalid_code", "invalid_order_ref"],
                not_found=["unknown_coupon"],
                conflict=["already_redeemed", "coupon_void", "coupon_expired", "not_yet_valid",
                          "threshold_not_met"],
            ),
            **idem,
        }},
        "/api/v1/member-codes/resolve": {"post": {
            "operationId": "resolve_member_code",
            **_write(
                "The member behind a member code (会员码) the cashier just scanned; the code is used up",
                "A member code stands for its member for 60 seconds and can be used once. With `member_id` "
                "the code is only confirmed for that member: another member's code is refused and not used up.",
                "MemberCodeQuery",
                {"200": _ok("The member; post the order or redeem the coupon for `member_id`.",
                            "MemberCodeResult")},
                body_limit=max_body,
                bad=["invalid_member_code"],
                not_found=["unknown_member_code", "member_not_found"],
                conflict=["member_code_expired", "member_code_used", "member_code_mismatch"],
            ),
            "x-idempotency": ("A code resolves once: a retry after a lost answer gets 409 `member_code_used`; "
                              "ask the shopper to refresh the code (a new one each time) and scan again. "
                              "A refused request uses nothing up."),
        }},
        "/api/v1/members/{member_id}/points": {"get": {
            "summary": "A member's balance, next expiry and latest ledger entries",
            "operationId": "member_points",
            "security": [{"bearerKey": []}, {"headerKey": []}],
            "parameters": [
                {"name": "member_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "recent", "in": "query", "required": False,
                 "description": "How many ledger entries, newest first.",
                 "schema": {"type": "integer", "minimum": 0, "maximum": max_recent, "default": 5}},
            ],
            "responses": _protected({
                "200": _ok("The member's points.", "Points"),
                "400": _error("A bad query parameter.", ["unknown_field", "invalid_field"]),
                "404": _error("No such member (closed accounts too), or a member id that is not a number.",
                              ["member_not_found", "no_such_endpoint"]),
            }, body_limit=None),
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty API for tills and the web shop",
            "version": VERSION,
            "description": (
                "Orders, returns, coupon redemption and points for the brand's own systems. "
                "Bodies are JSON objects in UTF-8 (`Content-Type: application/json`), at most "
                f"{max_body} bytes; unknown fields, fields given twice and NaN/Infinity are refused. "
                "Money is yuan as a decimal string. Every error is `{\"error\": code, \"message\": ...}` "
                "(schema `Error`); each response lists its codes in `x-error-codes`. A wrong URL is "
                "404 `no_such_endpoint`, a wrong method 405 `method_not_allowed`.\n\n"
                f"**Idempotency.** {_IDEMPOTENCY}\n\n"
                "**Keys.** Send the source's key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`; "
                "the key decides the source of what is posted."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearerKey": {"type": "http", "scheme": "bearer", "description": "The source's API key."},
                "headerKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                              "description": "The same key in another header."},
            },
        },
    }
