"""A thin async wrapper around wechatpy's synchronous ``WeChatClient``.

wechatpy blocks on HTTP, so every call runs in a small thread pool, never on
the event loop, with a timeout on each HTTP request and an overall deadline.
The access token comes from :class:`~bot.wechat.token.AccessTokenManager`,
which also makes the client usable against the local fake API server: the
base URL and the token URL both follow ``settings.api_base_url``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from bot import metrics
from bot.settings import WeChatSettings
from bot.wechat.errors import WeChatApiError
from bot.wechat.token import AccessTokenManager, TokenStore, open_token_store

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _AppClient(WeChatClient):  # type: ignore[misc]
    """wechatpy client whose base URL is configurable and whose token is shared."""

    def __init__(self, settings: WeChatSettings, tokens: AccessTokenManager) -> None:
        super().__init__(settings.app_id, settings.app_secret, timeout=settings.http_timeout, auto_retry=True)
        self.API_BASE_URL = settings.api_base_url
        self._tokens = tokens
        self._last = threading.local()  # the token each thread used last

    @property
    def access_token(self) -> str:
        token = self._tokens.get()
        self._last.value = token
        return token

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy calls this when WeChat says the token is invalid or expired,
        # then reads the new token from its session storage and retries once.
        token = self._tokens.refresh(stale=getattr(self._last, "value", None))
        self._last.value = token
        self.session.set(self.access_token_key, token)
        return {"access_token": token}


@dataclass(frozen=True)
class QrTicket:
    """A QR code made by WeChat: show it via ``image_url`` or encode ``url`` yourself."""

    ticket: str
    url: str
    expire_seconds: int | None

    @property
    def image_url(self) -> str:
        """WeChat's own rendering of the code."""
        return "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + quote(self.ticket)


class WeChatApi:
    """Async access to the few WeChat APIs the bot uses."""

    def __init__(
        self,
        settings: WeChatSettings,
        token_store: TokenStore | None = None,
        *,
        max_workers: int = 8,
    ) -> None:
        store = token_store or open_token_store(settings.redis_url)
        self.tokens = AccessTokenManager(
            settings.app_id,
            settings.app_secret,
            settings.api_base_url,
            store,
            timeout=settings.http_timeout,
            refresh_margin=settings.token_refresh_margin,
        )
        self._client = _AppClient(settings, self.tokens)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="wechat-api")
        # Token fetch + call, possibly twice (wechatpy retries once on a stale token).
        self._deadline = settings.http_timeout * 4 + 1

    @property
    def blocking(self) -> WeChatClient:
        """The synchronous wechatpy client, for a process without an event loop (the outreach scheduler)."""
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, timeout=self._deadline)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            metrics.wechat_api_error("timeout")
            raise WeChatApiError(None, "timed out") from None
        except WeChatClientException as exc:
            code = int(exc.errcode) if exc.errcode is not None else None
            metrics.wechat_api_error(code)
            raise WeChatApiError(code, str(exc.errmsg)) from None
        except requests.RequestException as exc:
            metrics.wechat_api_error("transport")
            raise WeChatApiError(None, type(exc).__name__) from None

    async def send_text(self, openid: str, text: str) -> None:
        """Send one customer-service text message; raises WeChatApiError."""
        await self._call(self._client.message.send_text, openid, text)

    async def user_info(self, openid: str) -> dict[str, Any]:
        """The shopper's basic information (``unionid`` when the account is bound to an Open Platform)."""
        return await self._call(self._client.user.get, openid)

    async def send_image(self, openid: str, png: bytes) -> None:
        """Upload ``png`` as a temporary image and send it as a customer-service image message."""
        media = await self._call(self._client.media.upload, "image", ("code.png", png, "image/png"))
        await self._call(self._client.message.send_image, openid, str(media["media_id"]))

    async def create_qrcode(self, scene: str, expire_seconds: int | None = None) -> QrTicket:
        """A store QR code: permanent when ``expire_seconds`` is None, else temporary."""
        data: dict[str, Any] = {"action_info": {"scene": {"scene_str": scene}}}
        if expire_seconds is None:
            data["action_name"] = "QR_LIMIT_STR_SCENE"
        else:
            data["action_name"] = "QR_STR_SCENE"
            data["expire_seconds"] = expire_seconds
        res = await self._call(self._client.qrcode.create, data)
        return QrTicket(str(res["ticket"]), str(res.get("url", "")), res.get("expire_seconds"))

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Replace the account's custom menu (``{"button": [...]}``)."""
        await self._call(self._client.menu.create, menu)

    async def get_menu(self) -> dict[str, Any] | None:
        """The account's current custom menu, or None when it has none."""
        return await self._call(self._client.menu.get)

    def close(self) -> None:
        """Stop the worker threads (pending calls finish in the background)."""
        self._pool.shutdown(wait=False)
