"""WeChat's customer-service rules, checked before an agent's reply is sent.

WeChat accepts customer-service messages only within 48 hours of the
shopper's last interaction, and only a few per window (bot/wechat/shoppers.py
counts them). Checking first lets the console tell the agent *why* a reply
cannot go, instead of WeChat refusing it silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.wechat.channel import WeChatInput
from bot.wechat.xml import pack_texts


@dataclass(frozen=True)
class Verdict:
    """Whether a message can reach the shopper now, and how much room is left."""

    ok: bool
    code: str | None = None  # window_closed | quota_used | not_configured | wechat_refused
    quota_left: int | None = None  # None: unknown (WeChat decides)
    window_ends: float | None = None  # unix time the 48-hour window closes
    detail: dict[str, Any] = field(default_factory=dict)


async def _quota_left(channel: WeChatInput, openid: str) -> int | None:
    # Same keys as bot.wechat.shoppers.ShopperState (which offers no read-only peek yet).
    allow = await channel.store.get(f"cs:allow:{openid}")
    if allow is None:
        return None
    used = await channel.store.get(f"cs:used:{openid}")
    return max(0, int(allow) - int(used or 0))


async def check(channel: WeChatInput, openid: str, last_user_at: float | None, now: float | None = None) -> Verdict:
    """Can a customer-service message go to ``openid`` now (``last_user_at``: their last message)?"""
    at = now or time.time()
    window = float(channel.settings.cs_window_message)
    ends = last_user_at + window if last_user_at is not None else None
    if channel.api is None:
        return Verdict(False, "not_configured", window_ends=ends)
    if ends is None or ends <= at:
        return Verdict(False, "window_closed", window_ends=ends)
    left = await _quota_left(channel, openid)
    if left == 0:
        return Verdict(False, "quota_used", 0, ends)
    return Verdict(True, None, left, ends)


async def send(channel: WeChatInput, openid: str, text: str) -> bool:
    """Send one text by the customer-service API (counted against the quota); True if WeChat took it all."""
    chunks = pack_texts([text], channel.settings.max_text_bytes)
    sent = await channel.delivery.send(openid, [text])
    return sent == len(chunks) and sent > 0
