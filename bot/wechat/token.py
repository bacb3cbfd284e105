"""One access token per app, cached and refreshed in one place.

WeChat invalidates the previous token (after a short grace period) whenever a
new one is fetched, so processes must not each fetch their own: the token lives
in a shared store and only the holder of a lock refreshes it. This code runs in
worker threads (wechatpy is synchronous), hence the blocking Redis client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis
import requests

from bot.wechat.errors import WeChatApiError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedToken:
    """An access token and the epoch second at which WeChat expires it."""

    value: str
    expires_at: float


class TokenStore(Protocol):
    """Where the token of each app lives, plus a short refresh lock."""

    def load(self, app_id: str) -> CachedToken | None:
        """The stored token, or None."""

    def save(self, app_id: str, token: CachedToken) -> None:
        """Store a freshly fetched token."""

    def try_lock(self, app_id: str, ttl: float) -> bool:
        """Take the refresh lock for ``ttl`` seconds; False if someone holds it."""

    def unlock(self, app_id: str) -> None:
        """Release the refresh lock."""


class MemoryTokenStore:
    """Token store for a single process."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._locks: dict[str, float] = {}
        self._guard = threading.Lock()

    def load(self, app_id: str) -> CachedToken | None:
        return self._tokens.get(app_id)

    def save(self, app_id: str, token: CachedToken) -> None:
        self._tokens[app_id] = token

    def try_lock(self, app_id: str, ttl: float) -> bool:
        with self._guard:
            if self._locks.get(app_id, 0.0) > time.monotonic():
                return False
            self._locks[app_id] = time.monotonic() + ttl
            return True

    def unlock(self, app_id: str) -> None:
        with self._guard:
            self._locks.pop(app_id, None)


class RedisTokenStore:
    """Token store shared through Redis by every process of the bot."""

    def __init__(self, url: str, prefix: str = "wechat:token:") -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._prefix = prefix

    def load(self, app_id: str) -> CachedToken | None:
        raw = self._redis.get(self._prefix + app_id)
        if not raw:
            return None
        data = json.loads(raw)
        return CachedToken(data["value"], float(data["expires_at"]))

    def save(self, app_id: str, token: CachedToken) -> None:
        ttl = max(1, int(token.expires_at - time.time()))
        payload = json.dumps({"value": token.value, "expires_at": token.expires_at})
        self._redis.set(self._prefix + app_id, payload, ex=ttl)

    def try_lock(self, app_id: str, ttl: float) -> bool:
        key = self._prefix + app_id + ":lock"
        return bool(self._redis.set(key, "1", nx=True, px=int(ttl * 1000)))

    def unlock(self, app_id: str) -> None:
        self._redis.delete(self._prefix + app_id + ":lock")


def open_token_store(redis_url: str | None) -> TokenStore:
    """A Redis token store when a URL is given, else a memory one."""
    return RedisTokenStore(redis_url) if redis_url else MemoryTokenStore()


class AccessTokenManager:
    """Gives out a valid access token for one app, fetching it only when needed."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        api_base_url: str,
        store: TokenStore,
        *,
        timeout: float = 3.0,
        refresh_margin: float = 300,
        http: requests.Session | None = None,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self._url = api_base_url + "token"
        self._store = store
        self._timeout = timeout
        self._margin = refresh_margin
        self._http = http or requests.Session()
        self._local = threading.Lock()  # one refresh per process at a time

    def get(self) -> str:
        """A token valid for at least the refresh margin."""
        cached = self._store.load(self.app_id)
        if cached and cached.expires_at - time.time() > self._margin:
            return cached.value
        return self.refresh(stale=cached.value if cached else None)

    def refresh(self, stale: str | None = None) -> str:
        """Fetch a new token unless another thread or process already replaced ``stale``."""
        with self._local:
            deadline = time.monotonic() + self._timeout * 2 + 1
            while True:
                fresh = self._fresh(stale)
                if fresh is not None:
                    return fresh
                if self._store.try_lock(self.app_id, ttl=self._timeout * 2 + 1):
                    try:
                        # Another process may have refreshed between our look and the lock.
                        return self._fresh(stale) or self._fetch()
                    finally:
                        self._store.unlock(self.app_id)
                if time.monotonic() > deadline:
                    raise WeChatApiError(None, "timed out waiting for another access-token refresh")
                time.sleep(0.05)

    def _fresh(self, stale: str | None) -> str | None:
        """The stored token if it replaced ``stale`` and outlives the refresh margin."""
        cached = self._store.load(self.app_id)
        if cached and cached.value != stale and cached.expires_at - time.time() > self._margin:
            return cached.value
        return None

    def _fetch(self) -> str:
        params = {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}
        try:
            res = self._http.get(self._url, params=params, timeout=self._timeout)
            res.raise_for_status()
            data = res.json()
        except (requests.RequestException, ValueError) as exc:
            # Never log the URL: it carries the app secret.
            raise WeChatApiError(None, f"access token request failed: {type(exc).__name__}") from None
        if data.get("errcode"):
            raise WeChatApiError(int(data["errcode"]), str(data.get("errmsg", "")))
        token = CachedToken(str(data["access_token"]), time.time() + int(data.get("expires_in", 7200)))
        self._store.save(self.app_id, token)
        logger.info(
            "wechat access token refreshed app_id=%s expires_in=%s", self.app_id, data.get("expires_in")
        )
        return token.value
