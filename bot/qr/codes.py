"""What each store's QR code encodes: a permanent WeChat code, or a link to the web chat."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

from bot.qr import QrError
from bot.qr.tickets import TicketCache
from bot.settings import (
    SettingsError,
    WebChatSettings,
    WeChatSettings,
    load_webchat_settings,
    load_wechat_settings,
)
from bot.wechat.client import WeChatApi
from bot.wechat.inbound import store_code_of
from loyalty import db
from loyalty.catalogue import service as catalogue
from loyalty.catalogue.service import StoreView

Kind = Literal["wechat", "webchat"]

DEFAULT_CACHE_DIR = Path("var/qr")
WEBCHAT_PATH = "/webhooks/webchat/"


@dataclass(frozen=True)
class StoreQr:
    """What a store's code encodes, and the caption printed under it."""

    store: StoreView
    content: str
    kind: Kind

    @property
    def caption(self) -> list[str]:
        """Store name in Chinese, in English, then the store code."""
        return [self.store.name_zh, self.store.name_en, self.store.code]


# ---------------------------------------------------------------- targets


def wechat_settings_from_env(env: Mapping[str, str] | None = None) -> WeChatSettings | None:
    """WeChat settings when an app id and secret are set, else None (web chat codes).

    Set but unloadable settings raise :class:`SettingsError`: printing web chat
    posters when WeChat was meant would be a silent, costly mistake.
    """
    e = os.environ if env is None else env
    if not (e.get("WECHAT_APP_ID") and e.get("WECHAT_APP_SECRET")):
        return None
    return load_wechat_settings(e)


def webchat_url(settings: WebChatSettings, store_code: str) -> str:
    """The web chat page that attributes the conversation to ``store_code``."""
    return f"{settings.public_url}{WEBCHAT_PATH}?{urlencode({'store': store_code})}"



class StoreQrCodes:
    """Resolves what each store's QR code encodes (WeChat or web chat)."""

    def __init__(
        self,
        wechat: WeChatSettings | None = None,
        webchat: WebChatSettings | None = None,
        *,
        cache_dir: Path | str = DEFAULT_CACHE_DIR,
        api: WeChatApi | None = None,
    ) -> None:
        if wechat is not None and not wechat.can_send:
            raise SettingsError("WeChat QR codes need WECHAT_APP_ID and WECHAT_APP_SECRET")
        self.wechat = wechat
        self.webchat = webchat or WebChatSettings()
        self._cache = TicketCache(Path(cache_dir), wechat) if wechat else None
        self._api = api
        self._own_api = api is None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, cache_dir: Path | str = DEFAULT_CACHE_DIR
    ) -> StoreQrCodes:
        """Codes as configured by environment variables (see .env.example)."""
        return cls(wechat_settings_from_env(env), load_webchat_settings(env), cache_dir=cache_dir)

    @property
    def kind(self) -> Kind:
        """``wechat`` when WeChat codes are made, else ``webchat``."""
        return "wechat" if self.wechat else "webchat"

    async def target_of(self, store: StoreView) -> StoreQr:
        """What the code of a known store encodes."""
        if self.wechat is None or self._cache is None:
            return StoreQr(store, webchat_url(self.webchat, store.code), "webchat")
        if store_code_of(store.code) != store.code:
            # The channel would ignore such a scene string on scan.
            raise QrError(f"store code {store.code!r} cannot be a WeChat scene (A-Z, 0-9, _ and - only)")
        if self._api is None:
            self._api = WeChatApi(self.wechat)
        return StoreQr(store, await self._cache.get_or_create(store.code, self._api), "wechat")

    async def target(self, store_code: str) -> StoreQr:
        """The code of an active store; raises NotFound (code ``unknown_store``)."""
        store = await db.arun(catalogue.store, store_code, readonly=True)
        return await self.target_of(store)

    def close(self) -> None:
        """Stop the WeChat client's threads if this object started them."""
        if self._api is not None and self._own_api:
            self._api.close()
            self._api = None


async def target_for(store_code: str, codes: StoreQrCodes | None = None) -> tuple[str, Kind]:
    """``(content, kind)`` of a store's QR code; kind is ``wechat`` or ``webchat``."""
    own = codes is None
    codes = codes or StoreQrCodes.from_env()
    try:
        qr = await codes.target(store_code)
    finally:
        if own:
            codes.close()
    return qr.content, qr.kind


# ---------------------------------------------------------------- rendering
