"""The action server: rasa_sdk's app, answering only callers that hold ACTION_SERVER_TOKEN.

Run ``python -m bot.action_server`` (the launcher does). It takes rasa_sdk's
options (``--actions``, ``--port``, ``--ssl-certificate`` …) plus ``--host``,
listens on loopback unless ``ACTIONS_HOST``/``--host`` says otherwise, and
refuses to start without a token. Every request except ``GET /health`` must
carry ``Authorization: Bearer <ACTION_SERVER_TOKEN>``, compared in constant
time; anything else gets 401 before an action is looked up. Rasa sends the
header from ``endpoints.yml`` (``action_endpoint.headers``). Rasa's own
``token:`` option is not used: it puts the secret in the URL's query
string, where access logs and proxies keep it.

Why the token is the whole gate (the actions do not check a channel signature):

- An action trusts the ``sender_id`` and input channel of the tracker it is
  given. Rasa only posts trackers it read from its own tracker store, and
  every conversation there was opened by a channel that authenticated the
  shopper: WeChat callbacks are signed by WeChat (the sender is the openid
  inside), web chat visitors present an HMAC of their id, and the console
  speaks only for logged-in agents. Rasa's REST channel is not mounted and
  its HTTP API (``--enable-api``) is not started, so nobody can write a
  message into someone else's conversation through Rasa.
- So a forged tracker can only come from a direct call to this server, and
  the token stops that. A per-message signature checked here would add
  nothing: whoever can make Rasa run an action (say, through an HTTP API
  switched on without a token) does so on the victim's real tracker, whose
  messages carry genuine signatures; and whoever holds the token holds
  the environment this server runs in, database URL included.
- Hence: keep the token secret, keep ``--enable-api`` off (or behind its own
  ``--auth-token``), and use TLS (``--ssl-certificate``) when the action
  server is on another host, since the token crosses the network.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import sys
import time
from typing import Any

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app as create_sdk_app
from rasa_sdk.endpoint import create_argument_parser, create_ssl_context
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import BaseHTTPResponse, HTTPResponse

from bot import domain_digest, logs, metrics
from bot.health import metrics_response, ready_response, within
from bot.settings import SettingsError, load_action_server_settings
from loyalty import db

# Named, not __name__: run as `python -m bot.action_server` it would be "__main__".
logger = logging.getLogger("bot.action_server")

# Load balancers, the launcher and Prometheus reach these without the action token; they
# reveal nothing personal. /metrics takes METRICS_TOKEN when that is set (bot.ops).
OPEN_PATHS = frozenset({"/health", "/health/ready", "/metrics"})


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>``, compared in constant time."""
    scheme, _, presented = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        presented = ""
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def create_app(token: str, actions: str = "actions", *, auto_reload: bool = False) -> Sanic:
    """rasa_sdk's Sanic app for ``actions``, with the token check in front of every route but /health."""
    if not token:
        raise SettingsError("the action server needs a token")
    # No CORS: browsers have no business here, only the Rasa server does.
    app = create_sdk_app(actions, cors_origins="", auto_reload=auto_reload)

    async def require_token(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS or authorized(request.headers.get("authorization"), token):
            return None
        logger.warning("action server refused %s %s from %s: no valid token",
                       request.method, request.path, request.ip)
        return response.json({"error": "unauthorized"}, status=401)

    app.register_middleware(require_token, "request")
    # After the token check: only Rasa gets to hand over a domain (bot/domain_digest.py). Before
    # the metrics: a call refused for an unknown domain ran no action and is not counted.
    domain_digest.remember_domains(app)
    _observe(app)

    @app.get("/health/ready")
    async def ready(request: Request) -> HTTPResponse:
        """Readiness for a load balancer: the loyalty database answers (503 with the reason if not)."""
        return ready_response({"database": await database_state()})

    @app.get("/metrics")
    async def scrape(request: Request) -> HTTPResponse:
        return await metrics_response(request)

    return app


async def database_state() -> str:
    """``ok`` when the loyalty database answers a query within the check's time, else why not."""

    def probe() -> None:
        from sqlalchemy import text

        with db.engine().connect() as conn:
            conn.execute(text("SELECT 1"))

    return await within(lambda: asyncio.to_thread(probe))


def _observe(app: Sanic) -> None:
    """Each action call: its turn id (``X-Turn-Id`` from Rasa) on every log line, and its metrics."""

    async def begin(request: Request) -> None:
        logs.start_turn(request.headers.get(logs.TURN_HEADER))
        if request.path == "/webhook" and request.method == "POST":
            request.ctx.action_started = time.perf_counter()

    async def end(request: Request, resp: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "action_started", None)
        if started is None:
            return
        try:
            name = str((request.json or {}).get("next_action") or "unknown")[:64]
        except Exception:  # an unreadable body was already refused by rasa_sdk
            name = "unknown"
        status = resp.status or 500
        outcome = "ok" if status < 300 else "rejected" if status == 400 else "error"
        seconds = time.perf_counter() - started
        metrics.action_run(name, outcome, seconds)
        logger.info("action %s %s ms=%d", name, outcome, seconds * 1000)

    # After the token check: refused calls are neither timed nor counted.
    app.register_middleware(begin, "request")
    app.register_middleware(end, "response")


def _parser() -> argparse.ArgumentParser:
    parser = create_argument_parser()
    parser.prog = "python -m bot.action_server"
    parser.description = "Start the action server (every call needs ACTION_SERVER_TOKEN)."
    parser.add_argument("--host", default=None, help="interface to listen on (default: ACTIONS_HOST or 127.0.0.1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the options, check the settings, and serve until stopped."""
    parser = _parser()
    try:
        settings = load_action_server_settings()
        token = settings.require_token()
    except SettingsError as exc:
        print(f"action server not started: {exc}", file=sys.stderr)
        return 2
    parser.set_defaults(port=settings.port, actions="actions")
    args = parser.parse_args(argv)
    host = args.host or settings.host

    # The same logging set-up as `python -m rasa_sdk`.
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(
        logging.getLogger("rasa_sdk"), args.log_file, args.loglevel, args.logging_config_file
    )
    utils.update_sanic_log_level()
    logs.configure()  # LOG_FORMAT=json: one JSON object per line; personal data masked either way

    app = create_app(token, args.actions, auto_reload=args.auto_reload)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    ssl: Any = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    logger.info("action server listening on %s://%s:%d", "https" if ssl else "http", host, args.port)
    # No access log: it would only repeat what Rasa already logs, for every action.
    app.run(host, args.port, ssl=ssl, workers=utils.number_of_sanic_workers(), access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
