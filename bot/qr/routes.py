"""The HTTP route of store QR codes, mounted by its own channel entry in credentials.yml."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.qr import QrError
from bot.qr.codes import StoreQrCodes
from bot.qr.render import CONTENT_TYPES, FORMATS, file_name, render
from bot.wechat.errors import WeChatApiError
from loyalty.errors import NotFound, Unavailable

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"error": code, "message": message}, status=status)


def qr_blueprint(codes: StoreQrCodes | None = None, *, name: str = "store_qr") -> Blueprint:
    """``GET <prefix>/<code>.png`` and ``<prefix>/<code>.svg``: a store's printable code.

    Without ``codes`` the configuration comes from the environment, read now so
    that a misconfiguration stops the server at start-up.
    """
    qr_codes = codes or StoreQrCodes.from_env()
    bp = Blueprint(name)

    @bp.get("/<filename:str>")
    async def store_qr(request: Request, filename: str) -> HTTPResponse:
        code, dot, ext = filename.rpartition(".")
        fmt = ext.lower()
        if not dot or not code or fmt not in FORMATS:
            return _error(404, "not_found", "Use /qr/<store code>.png or .svg")
        try:
            qr = await qr_codes.target(code)
        except NotFound as exc:
            return response.json(exc.as_dict(), status=404)
        except Unavailable as exc:
            return response.json(exc.as_dict(), status=503)
        except WeChatApiError as exc:
            logger.warning("wechat qr code failed store=%s error=%s", code[:64], exc)
            return _error(502, "wechat_unavailable", "WeChat did not make the QR code; try again later.")
        except QrError as exc:
            return _error(500, "qr_failed", str(exc))
        body = await asyncio.to_thread(render, qr, fmt)  # type: ignore[arg-type]
        headers = {
            "Cache-Control": "public, max-age=3600",
            "Content-Disposition": f'inline; filename="{file_name(qr.store.code, fmt)}"',  # type: ignore[arg-type]
            "X-Content-Type-Options": "nosniff",
        }
        if fmt == "svg":
            # Opened on its own, an SVG is a document: allow no scripts or fetches.
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
        return response.raw(body, content_type=CONTENT_TYPES[fmt], headers=headers)

    @bp.listener("after_server_stop")
    async def _close(*_: Any) -> None:
        if codes is None:
            qr_codes.close()

    return bp


# ---------------------------------------------------------------- CLI


class StoreQrInput(InputChannel):
    """Serves the store QR codes at ``/webhooks/qr/<code>.png|svg`` inside the Rasa server.

    Not a conversation channel: it is listed in credentials.yml like the
    channels so that Rasa mounts its route beside them.
    """

    @classmethod
    def name(cls) -> str:
        return "qr"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> StoreQrInput:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return qr_blueprint()
