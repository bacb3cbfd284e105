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
import hmac
import logging
import sys
from typing import Any

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app as create_sdk_app
from rasa_sdk.endpoint import create_argument_parser, create_ssl_context
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.settings import SettingsError, load_action_server_settings

logger = logging.getLogger(__name__)

# Load balancers and the launcher probe this without a secret; it reveals nothing.
OPEN_PATHS = frozenset({"/health"})


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
    return app


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

    app = create_app(token, args.actions, auto_reload=args.auto_reload)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    ssl: Any = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    logger.info("action server listening on %s://%s:%d", "https" if ssl else "http", host, args.port)
    # No access log: it would only repeat what Rasa already logs, for every action.
    app.run(host, args.port, ssl=ssl, workers=utils.number_of_sanic_workers(), access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
