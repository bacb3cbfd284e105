"""SMS one-time codes: 6 digits, kept only as a keyed hash, and the limits on sending them.

Sending is limited per phone number and per chat: one code per cool-down
(60 s) and a daily cap (Asia/Shanghai days). Each limit is one row updated
by a single guarded statement, so concurrent requests on SQLite or
PostgreSQL can never send more than the limits allow.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from loyalty.common import local_date
from loyalty.config import settings
from loyalty.errors import Refused
from loyalty.identity.keys import keyed, same
from loyalty.identity.models import SendQuota

CODE_LENGTH = 6
_CODE = re.compile(r"^[0-9]{6}$")
_SEPARATORS = re.compile(r"[\s\-.·]")


def typed_code(text: object) -> str | None:
    """The 6-digit code in a message that is only that ("123456", "123 456", full-width digits), else None."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    digits = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    return digits if _CODE.match(digits) else None


def new_code() -> str:
    """A uniformly random 6-digit code."""
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


def new_nonce() -> str:
    return secrets.token_hex(16)


def code_hash(nonce: str, code: str) -> str:
    """The keyed hash a code is kept as (salted per challenge by ``nonce``)."""
    return keyed("otp", f"{nonce}:{code}")


def code_matches(nonce: str, code: str, stored: str) -> bool:
    """Whether ``code`` is the one hashed as ``stored``, compared in constant time."""
    return same(code_hash(nonce, code), stored)


def phone_key(phone: str) -> str:
    return keyed("phone", phone)


def chat_key(channel: str, external_id: str) -> str:
    return keyed("chat", f"{channel}:{external_id}")


def _take(s: Session, key: str, now: datetime, cap: int, scope: str) -> None:
    """Count one send against ``key``; Refused when in the cool-down or over today's cap."""
    cooldown = timedelta(seconds=settings().otp_cooldown_seconds)
    today = local_date(now)
    taken = s.execute(
        update(SendQuota)
        .where(SendQuota.key == key, SendQuota.last_sent_at <= now - cooldown,
               or_(SendQuota.day != today, SendQuota.count < cap))
        .values(count=case((SendQuota.day == today, SendQuota.count + 1), else_=1), day=today, last_sent_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken == 1:
        return
    row = s.execute(
        select(SendQuota).where(SendQuota.key == key).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        # The first send for this key; a concurrent twin inserting it too makes one of
        # the two fail on the primary key, and db.run runs that one again.
        s.add(SendQuota(key=key, day=today, count=1, last_sent_at=now))
        s.flush()
        return
    wait = (row.last_sent_at + cooldown - now).total_seconds()
    if wait > 0:
        raise Refused("Please wait before asking for another code.", code="code_cooldown",
                      retry_after=int(wait) + (wait % 1 > 0))
    raise Refused("No more codes today.", code="code_daily_limit", scope=scope)


def take_send_quota(s: Session, *, phone: str, channel: str, external_id: str, now: datetime) -> None:
    """Count one code sent to ``phone`` for this chat, or refuse (nothing counted) when a limit says no."""
    st = settings()
    _take(s, chat_key(channel, external_id), now, st.otp_daily_per_identity, "chat")
    _take(s, phone_key(phone), now, st.otp_daily_per_phone, "phone")
