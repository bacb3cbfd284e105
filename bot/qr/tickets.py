"""Permanent WeChat QR tickets, created once per store and kept in a JSON file."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bot.qr import QrError
from bot.settings import (
    WeChatSettings,
)
from bot.wechat.client import WeChatApi

logger = logging.getLogger(__name__)
LOCK_TIMEOUT = 30.0  # longer than one WeChat call with its retries
_SAFE_FILE = re.compile(r"[^A-Za-z0-9_-]")


class TicketCache:
    """Permanent WeChat QR tickets per store, in one JSON file per app.

    Creation happens under an exclusive ``flock`` so that concurrent requests
    and processes on this host create each store's code once.
    """

    def __init__(self, cache_dir: Path, settings: WeChatSettings) -> None:
        self.path = cache_dir / f"wechat-{_SAFE_FILE.sub('_', settings.app_id)}.json"
        self._api_base_url = settings.api_base_url

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            # It is the only record of the codes already issued: never overwrite it.
            raise QrError(f"{self.path} is not valid JSON; repair or move it away") from None
        if not isinstance(data, dict):
            raise QrError(f"{self.path} does not hold a JSON object; repair or move it away")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _url(self, data: dict[str, Any], code: str) -> str | None:
        entry = data.get(code)
        # A code made against another API base (the local fake) is useless here.
        if isinstance(entry, dict) and entry.get("api_base_url") == self._api_base_url and entry.get("url"):
            return str(entry["url"])
        return None

    async def get(self, code: str) -> str | None:
        """The cached code content for ``code``, or None."""
        return self._url(await asyncio.to_thread(self._read), code)

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Poll a non-blocking lock: a cancelled request then leaves nothing behind.
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise QrError(f"timed out waiting for the lock on {self.path}") from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    async def get_or_create(self, code: str, api: WeChatApi) -> str:
        """The code content for ``code``, asking WeChat only the first time."""
        cached = await self.get(code)
        if cached:
            return cached
        async with self._locked():
            data = await asyncio.to_thread(self._read)
            cached = self._url(data, code)
            if cached:
                return cached
            ticket = await api.create_qrcode(code)  # permanent: QR_LIMIT_STR_SCENE
            if not ticket.url:
                raise QrError(f"WeChat returned no URL for store {code}")
            data[code] = {
                "ticket": ticket.ticket,
                "url": ticket.url,
                "api_base_url": self._api_base_url,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            await asyncio.to_thread(self._write, data)
            logger.info("wechat permanent qr code created store=%s", code)
            return ticket.url

