"""Per-shopper state the channel keeps between callbacks.

- Numbered choices: WeChat has no buttons in chat, so buttons are shown as
  "1. …" lines and a reply of "1", or the button's title typed out, is turned
  back into the button's payload (titles are matched by bot/buttons.py).
- Customer-service quota: each interaction opens a window in which only a few
  customer-service messages may be sent (5 in 48 h after a message; 3 in a
  minute after a follow, scan or menu click). Counting them here avoids
  calls WeChat would refuse; WeChat's own refusal is still handled.
"""

from __future__ import annotations

import json
import re
import unicodedata

from bot import buttons
from bot.buttons import Offer
from bot.settings import WeChatSettings
from bot.wechat.kv import KeyValueStore

# "1", "1.", "１", "2。", "3、" — a number and nothing else.
_CHOICE = re.compile(r"^\s*(\d{1,2})\s*[.。、)）]?\s*$")


class ShopperState:
    """Choices and quota windows per openid, in a shared key-value store."""

    def __init__(self, store: KeyValueStore, settings: WeChatSettings) -> None:
        self._store = store
        self._s = settings

    # ------------------------------------------------------------ choices

    async def save_choices(self, openid: str, choices: list[Offer]) -> None:
        """Remember the (title, payload) of the buttons just shown (none: forget old ones)."""
        if choices:
            raw = json.dumps([list(c) for c in choices], ensure_ascii=False)
            await self._store.put(f"choices:{openid}", raw, self._s.choice_ttl)
        else:
            await self._store.delete(f"choices:{openid}")

    async def resolve_choice(self, openid: str, text: str) -> str | None:
        """The payload a reply like "2", or a shown button's title, picks; None if it picks nothing."""
        number = _CHOICE.match(unicodedata.normalize("NFKC", text))
        raw = await self._store.get(f"choices:{openid}")
        if raw is None:
            return None
        # Entries saved before titles were kept are bare payloads: they still answer to numbers.
        choices: list[Offer] = [("", c) if isinstance(c, str) else (c[0], c[1]) for c in json.loads(raw)]
        if number:
            index = int(number.group(1)) - 1
            return choices[index][1] if 0 <= index < len(choices) else None
        return buttons.match(text, choices)

    # ------------------------------------------------------------ quota

    async def open_window(self, openid: str, kind: str) -> None:
        """Start the customer-service window an interaction of ``kind`` opens."""
        if kind == "message":
            quota, ttl = self._s.cs_quota_message, self._s.cs_window_message
        else:
            quota, ttl = self._s.cs_quota_event, self._s.cs_window_event
        await self._store.put(f"cs:allow:{openid}", str(quota), ttl)
        await self._store.delete(f"cs:used:{openid}")

    async def take_quota(self, openid: str) -> bool:
        """Count one customer-service message; False when the window is used up.

        With no known window (expired, or another process restarted) the send
        is allowed and WeChat decides.
        """
        allow = await self._store.get(f"cs:allow:{openid}")
        if allow is None:
            return True
        used = await self._store.incr(f"cs:used:{openid}", self._s.cs_window_message)
        return used <= int(allow)

    async def exhaust(self, openid: str) -> None:
        """WeChat said the quota is used up: stop trying until the next interaction."""
        await self._store.put(f"cs:allow:{openid}", "0", self._s.cs_window_message)
