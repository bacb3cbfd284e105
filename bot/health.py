"""Health, readiness and metrics responses shared by the Rasa process (bot.ops) and the action server."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import metrics
from bot.settings import metrics_token

# Seconds each readiness check may take: a load balancer probes every few seconds.
CHECK_TIMEOUT = 2.0


async def within(check: Callable[[], Awaitable[Any]]) -> str:
    """``ok`` when ``check`` finishes within CHECK_TIMEOUT, else why not."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except asyncio.TimeoutError:
        return "timed out"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def ready_response(checks: dict[str, str]) -> HTTPResponse:
    """200 with the checks when all are ok, else 503 with the failing ones as reasons."""
    reasons = {name: state for name, state in checks.items() if state != "ok"}
    if reasons:
        return response.json({"status": "not ready", "reasons": reasons, "checks": checks}, status=503)
    return response.json({"status": "ready", "checks": checks})


def metrics_allowed(request: Request, token: str | None) -> bool:
    """Whether a scrape may read /metrics: always without METRICS_TOKEN, else with it as a Bearer token."""
    if not token:
        return True
    scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


async def metrics_response(request: Request) -> HTTPResponse:
    if not metrics_allowed(request, metrics_token()):
        return response.json({"error": "unauthorized"}, status=401)
    body, content_type = metrics.exposition()
    return response.raw(body, content_type=content_type)


