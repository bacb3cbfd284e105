"""Members: the member record, phone numbers, channel identities and marketing consent.

Joining, the member card and closing an account combine other domains and live in
:mod:`loyalty.membership`."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.errors import InvalidInput, Refused
from loyalty.members.lock import lock_member
from loyalty.members.models import ChannelIdentity, Member

PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
CHANNELS = ("wechat", "webchat", "pos", "online", "console", "cli", "rest")
# The languages the assistant speaks and outreach writes in; "zh" is the default.
LANGUAGES = ("zh", "en")

_IDENTITY_OWNER = select(ChannelIdentity.member_id).where(
    ChannelIdentity.channel == bindparam("channel"), ChannelIdentity.external_id == bindparam("external_id")
)


def normalize_phone(raw: str) -> str:
    """A mainland mobile number as 11 digits, from "+86 138-0013-8000", full-width digits and the like."""
    if not isinstance(raw, str):
        raise InvalidInput("Please give a phone number.", code="invalid_phone")
    text = unicodedata.normalize("NFKC", raw).strip()
    text = re.sub(r"[\s\-()（）.]", "", text)
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    elif text.startswith("86") and len(text) == 13:
        text = text[2:]
    if not PHONE_RE.match(text):
        raise InvalidInput("That is not a valid mainland mobile number.", code="invalid_phone")
    return text


def mask_phone(phone: str | None) -> str:
    """138****5678, for logs and screens."""
    if not phone or len(phone) < 7:
        return "****"
    return f"{phone[:3]}****{phone[-4:]}"


def identity_owner(s: Session, channel: str, external_id: str) -> int | None:
    """The id of the member a channel address belongs to (closed members included), if any."""
    return s.execute(_IDENTITY_OWNER, {"channel": channel, "external_id": external_id}).scalar()


def bind_identity(s: Session, member_id: int, channel: str, external_id: str) -> None:
    """Link one more channel address to a member (after the caller verified the person)."""
    check_identity(channel, external_id)
    lock_member(s, member_id)
    owner = identity_owner(s, channel, external_id)
    if owner == member_id:
        return
    if owner is not None:
        raise Refused("This chat is linked to another member.", code="identity_taken")
    s.add(ChannelIdentity(member_id=member_id, channel=channel, external_id=external_id))
    s.flush()


def check_identity(channel: object, external_id: object) -> None:
    """Refuse an unknown channel or an empty or overlong address."""
    if (channel not in CHANNELS or not isinstance(external_id, str) or not external_id.strip()
            or len(external_id) > 128):
        raise InvalidInput("Unknown channel or empty address.", code="invalid_identity")


def set_marketing(s: Session, member_id: int, opt_in: bool, *, actor: str, now: datetime | None = None) -> None:
    """Opt in or out of marketing messages, audited."""
    m = lock_member(s, member_id)
    if m.marketing_opt_in != opt_in:
        m.marketing_opt_in = opt_in
        audit(s, actor, "marketing_opt_in" if opt_in else "marketing_opt_out", member_id)


def check_language(language: object) -> str:
    """``language`` if the assistant speaks it; refuses anything else."""
    if language not in LANGUAGES:
        raise InvalidInput("Unknown language.", code="invalid_language")
    return str(language)


def set_language(s: Session, member_id: int, language: str) -> None:
    """Remember the language a member chats in (outreach writes to them in it)."""
    language = check_language(language)
    m = lock_member(s, member_id)
    if m.language != language:
        m.language = language


def can_market(s: Session, member_id: int) -> bool:
    """Whether a marketing message may go to this member (active and opted in)."""
    m = s.get(Member, member_id)
    return bool(m and m.status == "active" and m.marketing_opt_in)


def marketing_audience(s: Session) -> list[int]:
    """Every member that marketing may reach."""
    q = select(Member.id).where(Member.status == "active", Member.marketing_opt_in.is_(True))
    return list(s.execute(q.order_by(Member.id)).scalars())


