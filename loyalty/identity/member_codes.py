"""Member codes (会员码): a short numeric code a shopper shows at the till, valid for about a minute, used once.

The code is time-based like a one-time password: HMAC-SHA256 of the time
step (``member_code_seconds`` long) and a per-member counter, under a
per-member secret derived from the identity secret and a random salt of the
member's, truncated to ``member_code_digits`` digits (RFC 4226's dynamic
truncation) behind a fixed prefix tills recognise ("88" + 8 digits).

Eight digits cannot carry a member id, so each code shown is also recorded
(code, step, member, expiry): the till's look-up is one indexed read, and
using it is one guarded update, so a code resolves exactly once even when
two tills scan it at the same moment. Asking again ("refresh") shows a new
code and retires the previous one. A code whose digits happen to equal
another member's live code is never shown: the next counter value is used.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.config import settings
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.identity.keys import secret
from loyalty.identity.models import MemberCode, MemberCodeKey
from loyalty.members.lock import lock_member
from loyalty.members.models import Member

_LIVE_SAME_CODE = select(MemberCode.member_id).where(
    MemberCode.code == bindparam("code"), MemberCode.expires_at > bindparam("now"), MemberCode.used_at.is_(None),
)
_LATEST_BY_CODE = (
    select(MemberCode).where(MemberCode.code == bindparam("code")).order_by(MemberCode.id.desc()).limit(1)
)
_MAX_TRIES = 8


@dataclass(frozen=True)
class ShownCode:
    """A member code to show: ``code`` as tills read it, valid until ``expires_at``."""

    code: str
    expires_at: datetime
    seconds: int

    @property
    def spaced(self) -> str:
        """The code in groups for reading aloud: "88 1234 5678"."""
        c = self.code
        return " ".join(part for part in (c[:-8], c[-8:-4], c[-4:]) if part)


def step_of(at: datetime) -> int:
    return int(at.timestamp()) // settings().member_code_seconds


def code_for(salt: str, member_id: int, step: int, counter: int) -> str:
    """The code of a member for one time step and counter value (TOTP-like dynamic truncation)."""
    st = settings()
    member_secret = hmac.new(secret(), f"member-code\x00{member_id}\x00{salt}".encode(), hashlib.sha256).digest()
    mac = hmac.new(member_secret, struct.pack(">QQ", step, counter), hashlib.sha256).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    return st.member_code_prefix + f"{value % 10**st.member_code_digits:0{st.member_code_digits}d}"


def code_shape() -> re.Pattern[str]:
    st = settings()
    return re.compile(rf"^{re.escape(st.member_code_prefix)}[0-9]{{{st.member_code_digits}}}$")


def issue(s: Session, member_id: int, *, now: datetime | None = None) -> ShownCode:
    """A fresh member code for an active member; the member's earlier codes stop working."""
    at = now_or(now)
    lock_member(s, member_id)
    key = s.get(MemberCodeKey, member_id)
    if key is None:
        key = MemberCodeKey(member_id=member_id, salt=secrets.token_hex(16), counter=0)
        s.add(key)
    # Retire the earlier codes (a refresh replaces them) and forget those long gone.
    s.execute(
        update(MemberCode)
        .where(MemberCode.member_id == member_id, MemberCode.used_at.is_(None), MemberCode.expires_at > at)
        .values(expires_at=at)
        .execution_options(synchronize_session=False)
    )
    s.execute(delete(MemberCode).where(MemberCode.member_id == member_id,
                                       MemberCode.expires_at < at - timedelta(days=1)))
    step = step_of(at)
    seconds = settings().member_code_seconds
    for _ in range(_MAX_TRIES):
        key.counter += 1
        code = code_for(key.salt, member_id, step, key.counter)
        if s.execute(_LIVE_SAME_CODE, {"code": code, "now": at}).first() is None:
            break
    else:
        raise Refused("No free member code right now; try again.", code="member_code_busy")
    expires = at + timedelta(seconds=seconds)
    # (code, step) is unique: a concurrent twin of the same digits fails here and db.run retries.
    s.add(MemberCode(code=code, step=step, counter=key.counter, member_id=member_id, issued_at=at,
                     expires_at=expires))
    s.flush()
    return ShownCode(code, expires, seconds)


def resolve(s: Session, code: object, *, source: str, member_id: int | None = None,
            now: datetime | None = None) -> int:
    """The id of the member a scanned code stands for, using the code up.

    Refused ``member_code_expired`` after its minute (or once a newer code was
    shown), ``member_code_used`` the second time, ``member_code_mismatch`` when
    ``member_id`` names someone else (nothing is used up then). InvalidInput
    ``invalid_member_code`` for anything not shaped like a member code, NotFound
    ``unknown_member_code`` for a code never shown.
    """
    if not isinstance(code, str) or not code_shape().match(code):
        raise InvalidInput("This is not a member code.", code="invalid_member_code")
    at = now_or(now)
    row = s.execute(_LATEST_BY_CODE, {"code": code}).scalar_one_or_none()
    if row is None:
        raise NotFound("No such member code.", code="unknown_member_code")
    if row.used_at is not None:
        raise Refused("This member code was used already.", code="member_code_used")
    if at >= row.expires_at or abs(step_of(at) - row.step) > 1:
        raise Refused("This member code has expired; ask for a fresh one.", code="member_code_expired")
    if member_id is not None and member_id != row.member_id:
        raise Refused("This member code belongs to another member.", code="member_code_mismatch")
    key = s.get(MemberCodeKey, row.member_id)
    if key is None or not hmac.compare_digest(code_for(key.salt, row.member_id, row.step, row.counter), code):
        raise NotFound("No such member code.", code="unknown_member_code")
    used = s.execute(
        update(MemberCode)
        .where(MemberCode.id == row.id, MemberCode.used_at.is_(None), MemberCode.expires_at > at)
        .values(used_at=at, used_by=source[:40])
        .execution_options(synchronize_session=False)
    ).rowcount
    if used != 1:  # another till took it in between
        raise Refused("This member code was used already.", code="member_code_used")
    member = s.get(Member, row.member_id)
    if member is None or member.status != "active":
        raise NotFound("No such member.", code="member_not_found")
    return member.id
