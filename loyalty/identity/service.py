"""Linking chats to members: an SMS code proves the phone number, a WeChat UnionID proves the person.

A shopper who joined at a till links their WeChat or web chat by asking for
a code (sent to the member's number, shown masked) and typing it back.
The code is entered by the channel (bot/linking.py) before the message
reaches the assistant, so it never lands in a tracker; the assistant then
reads how the attempt went with :func:`link_state`.

Sending is two transactions around the SMS call: the challenge and the send
limits are committed first (so a code that arrives can be checked, and a
crash can never send twice as many codes as the limits allow), the outcome
second. Each send, bind, unlink and agent-started link is audited; the audit
never holds a code or a phone number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.audit import audit
from loyalty.common import now_or
from loyalty.config import settings
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.identity import otp
from loyalty.identity.models import LinkChallenge, MemberCode, MemberCodeKey, WeChatUnion
from loyalty.members.lock import lock_member
from loyalty.members.models import ChannelIdentity, Member
from loyalty.members.service import bind_identity, check_identity, identity_owner, mask_phone, normalize_phone
from loyalty.sms.gateway import SmsError
from loyalty.sms.service import gateway

log = logging.getLogger(__name__)

# A 6-digit message counts as a code entry while a challenge this recent exists (used,
# expired and locked ones included: a late or replayed code must not reach the tracker either).
RECENT = timedelta(hours=1)
MAX_UNIONID = 128

_LATEST = (
    select(LinkChallenge)
    .where(LinkChallenge.channel == bindparam("channel"), LinkChallenge.external_id == bindparam("external_id"))
    .order_by(LinkChallenge.id.desc())
    .limit(1)
)
_ACTIVE_BY_PHONE = select(Member.id).where(Member.phone == bindparam("phone"), Member.status == "active")


@dataclass(frozen=True)
class CodeSent:
    """A code is on its way to ``phone_masked``; it may be typed for ``expires_in`` seconds."""

    challenge_id: int
    member_id: int
    phone_masked: str
    expires_in: int


@dataclass(frozen=True)
class Attempt:
    """How the latest code entry of a chat went.

    ``outcome``: none (no recent code: the message was not a code entry),
    linked, wrong (``tries_left`` more), locked (too many wrong tries), expired,
    used (already used, or a newer code was sent), taken (the chat belongs to
    another member), phone_taken (the new number of an agent's link joined as
    someone else meanwhile), closed (the member closed the account meanwhile).
    """

    outcome: str  # (link_state also says "pending": a code was sent and nothing typed yet)
    tries_left: int = 0
    phone_masked: str | None = None
    member_id: int | None = None


@dataclass(frozen=True)
class _Pending:
    challenge_id: int
    member_id: int
    phone_masked: str
    phone: str = field(repr=False)
    code: str = field(repr=False)


def _recent(s: Session, channel: str, external_id: str, at: datetime, *, lock: bool) -> LinkChallenge | None:
    q = _LATEST.with_for_update().execution_options(populate_existing=True) if lock else _LATEST
    ch = s.execute(q, {"channel": channel, "external_id": external_id}).scalar_one_or_none()
    return ch if ch is not None and ch.created_at > at - RECENT else None


def _open(
    s: Session,
    channel: str,
    external_id: str,
    *,
    member_id: int,
    send_to: str,
    new_phone: str | None,
    started_by: str,
    at: datetime,
) -> _Pending:
    """Count the send against the limits, void older codes of this chat and record a new one."""
    check_identity(channel, external_id)
    owner = identity_owner(s, channel, external_id)
    if owner is not None:
        if owner == member_id:
            raise Refused("This chat is already linked to this member.", code="already_linked")
        raise Refused("This chat is linked to another member.", code="identity_taken")
    lock_member(s, member_id)
    otp.take_send_quota(s, phone=send_to, channel=channel, external_id=external_id, now=at)
    s.execute(
        update(LinkChallenge)
        .where(LinkChallenge.channel == channel, LinkChallenge.external_id == external_id,
               LinkChallenge.status == "pending")
        .values(status="superseded")
        .execution_options(synchronize_session=False)
    )
    code, nonce = otp.new_code(), otp.new_nonce()
    st = settings()
    ch = LinkChallenge(
        channel=channel, external_id=external_id, member_id=member_id, phone_key=otp.phone_key(send_to),
        phone_masked=mask_phone(send_to), new_phone=new_phone, nonce=nonce, code_hash=otp.code_hash(nonce, code),
        status="pending", tries=0, started_by=started_by, created_at=at,
        expires_at=at + timedelta(seconds=st.otp_ttl_seconds),
    )
    s.add(ch)
    s.flush()
    audit(s, started_by, "otp_send", member_id, channel=channel, challenge=ch.id)
    return _Pending(ch.id, member_id, ch.phone_masked, send_to, code)


def _failed(s: Session, challenge_id: int, provider_code: str, actor: str) -> None:
    ch = s.get(LinkChallenge, challenge_id)
    if ch is not None:
        ch.status = "failed"
        audit(s, actor, "otp_send_failed", ch.member_id, challenge=ch.id, provider_code=provider_code[:40])


def _send(pending: _Pending, actor: str) -> CodeSent:
    """Hand the code to the SMS gateway (outside any transaction); a refusal voids the challenge."""
    try:
        gateway().send_code(pending.phone, pending.code)
    except SmsError as exc:
        db.run(_failed, pending.challenge_id, exc.provider_code, actor)
        raise
    return CodeSent(pending.challenge_id, pending.member_id, pending.phone_masked, settings().otp_ttl_seconds)


def _open_for_phone(s: Session, channel: str, external_id: str, phone: str, actor: str, at: datetime) -> _Pending:
    number = normalize_phone(phone)
    member_id = s.execute(_ACTIVE_BY_PHONE, {"phone": number}).scalar()
    if member_id is None:
        raise NotFound("No member has this number.", code="not_a_member")
    return _open(s, channel, external_id, member_id=member_id, send_to=number, new_phone=None,
                 started_by=actor, at=at)


def request_link_code(channel: str, external_id: str, phone: str, *, actor: str | None = None,
                      now: datetime | None = None) -> CodeSent:
    """Send a code to the member with this number, to link this chat to them.

    Raises NotFound ``not_a_member``, Refused ``already_linked`` / ``identity_taken``
    / ``code_cooldown`` (``retry_after``) / ``code_daily_limit``, SmsError.
    """
    who = actor or channel
    pending = db.run(_open_for_phone, channel, external_id, phone, who, now_or(now))
    return _send(pending, who)


def _open_again(s: Session, channel: str, external_id: str, at: datetime) -> _Pending:
    last = _recent(s, channel, external_id, at, lock=True)
    if last is None or last.status in ("used", "void"):
        raise NotFound("No code to send again.", code="no_link_pending")
    member = s.get(Member, last.member_id)
    send_to = last.new_phone or (member.phone if member is not None else None)
    if not send_to:
        raise NotFound("No code to send again.", code="no_link_pending")
    return _open(s, channel, external_id, member_id=last.member_id, send_to=send_to, new_phone=last.new_phone,
                 started_by=last.started_by, at=at)


def resend_link_code(channel: str, external_id: str, *, now: datetime | None = None) -> CodeSent:
    """A new code for the link this chat started last (the older code stops working).

    Raises NotFound ``no_link_pending`` and what :func:`request_link_code` raises.
    """
    pending = db.run(_open_again, channel, external_id, now_or(now))
    return _send(pending, channel)


def _open_for_agent(s: Session, channel: str, external_id: str, member_id: int | None, member_phone: str | None,
                    new_phone: str | None, agent: str, at: datetime) -> _Pending:
    if member_id is None:
        found = s.execute(_ACTIVE_BY_PHONE, {"phone": normalize_phone(member_phone or "")}).scalar()
        if found is None:
            raise NotFound("No member has this number.", code="not_a_member")
        member_id = found
    member = lock_member(s, member_id)
    number = normalize_phone(new_phone) if new_phone else None
    if number is not None and number != member.phone:
        if s.execute(_ACTIVE_BY_PHONE, {"phone": number}).scalar() is not None:
            raise Refused("This number belongs to another member.", code="phone_taken")
    send_to = number or member.phone
    if not send_to:
        raise InvalidInput("The member has no phone number; give the new one.", code="invalid_phone")
    audit(s, agent, "link_started_by_agent", member_id, channel=channel, new_number=number is not None)
    return _open(s, channel, external_id, member_id=member_id, send_to=send_to,
                 new_phone=number if number != member.phone else None, started_by=agent, at=at)


def agent_link(channel: str, external_id: str, *, member_id: int | None = None, member_phone: str | None = None,
               new_phone: str | None, agent: str, now: datetime | None = None) -> CodeSent:
    """An agent starts a link for a shopper whose number changed: the code goes to ``new_phone``.

    The member is named by id or by the number on file. When the shopper types
    the code, the chat is linked and the member's number becomes ``new_phone``
    (the agent checked the person; the code proves the number). Without
    ``new_phone`` the code goes to the number on file.
    """
    pending = db.run(_open_for_agent, channel, external_id, member_id, member_phone, new_phone, agent, now_or(now))
    return _send(pending, agent)


def _bind(s: Session, ch: LinkChallenge, at: datetime) -> str:
    """Link the chat of ``ch`` to its member; the outcome."""
    if ch.new_phone is not None:
        other = s.execute(_ACTIVE_BY_PHONE, {"phone": ch.new_phone}).scalar()
        if other is not None and other != ch.member_id:
            return "phone_taken"
    try:
        bind_identity(s, ch.member_id, ch.channel, ch.external_id)
    except Refused as exc:
        return "closed" if exc.code == "member_closed" else "taken"
    except NotFound:
        return "closed"
    if ch.channel == "wechat":
        union = s.get(WeChatUnion, ch.external_id)
        if union is not None:
            union.unlinked_at = None
        if union is not None and union.union_id is not None:
            s.execute(
                update(ChannelIdentity)
                .where(ChannelIdentity.channel == "wechat", ChannelIdentity.external_id == ch.external_id)
                .values(union_id=union.union_id)
                .execution_options(synchronize_session=False)
            )
    if ch.new_phone is not None:
        member = lock_member(s, ch.member_id)
        member.phone = ch.new_phone
        audit(s, ch.started_by, "phone_change", ch.member_id, via="sms", challenge=ch.id)
    audit(s, ch.started_by, "identity_link", ch.member_id, channel=ch.channel, via="sms", challenge=ch.id)
    return "linked"


def enter_code(s: Session, channel: str, external_id: str, text: str, *, now: datetime | None = None) -> Attempt:
    """Check a code typed in a chat against the chat's latest challenge, and link when it is right.

    ``none`` when the text is not a 6-digit code or no challenge is recent:
    the message is then an ordinary one. Otherwise the attempt counts, exactly,
    even under concurrency (the challenge row is locked): the fifth wrong code
    locks the challenge and nothing, not even the right code, opens it again.
    """
    code = otp.typed_code(text)
    if code is None:
        return Attempt("none")
    at = now_or(now)
    ch = _recent(s, channel, external_id, at, lock=True)
    if ch is None:
        return Attempt("none")
    outcome, left = _judge(s, ch, code, at)
    ch.last_outcome = outcome
    return Attempt(outcome, left, ch.phone_masked, ch.member_id)


def _judge(s: Session, ch: LinkChallenge, code: str, at: datetime) -> tuple[str, int]:
    max_tries = settings().otp_max_tries
    if ch.status in ("used", "superseded", "void"):
        return "used", 0
    if ch.status == "locked":
        return "locked", 0
    if ch.status != "pending":  # the SMS was refused: there is no code to enter
        return "expired", 0
    if at >= ch.expires_at:
        return "expired", 0
    if otp.code_matches(ch.nonce, code, ch.code_hash):
        outcome = _bind(s, ch, at)
        ch.status, ch.used_at = "used", at
        return outcome, 0
    ch.tries += 1
    if ch.tries >= max_tries:
        ch.status = "locked"
        audit(s, ch.channel, "otp_locked", ch.member_id, challenge=ch.id)
        return "locked", 0
    return "wrong", max_tries - ch.tries


def link_state(s: Session, channel: str, external_id: str, *, now: datetime | None = None) -> Attempt:
    """How the latest code entry of this chat went (``none`` when there was none recently)."""
    at = now_or(now)
    ch = _recent(s, channel, external_id, at, lock=False)
    if ch is None:
        return Attempt("none")
    if ch.last_outcome is None:
        waiting = ch.status == "pending" and at < ch.expires_at
        return Attempt("pending" if waiting else "none", 0, ch.phone_masked, ch.member_id)
    left = max(settings().otp_max_tries - ch.tries, 0) if ch.last_outcome == "wrong" else 0
    return Attempt(ch.last_outcome, left, ch.phone_masked, ch.member_id)


def unlink(s: Session, channel: str, external_id: str, *, actor: str | None = None,
           now: datetime | None = None) -> int:
    """Unlink this chat from its member; returns the member id. NotFound ``not_linked`` if it was not linked.

    An unlinked WeChat openid is not linked again by its UnionID, only by a new code.
    """
    check_identity(channel, external_id)
    at = now_or(now)
    ident = s.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id)
    ).scalar_one_or_none()
    if ident is None:
        raise NotFound("This chat is not linked to a member.", code="not_linked")
    member_id = ident.member_id
    lock_member(s, member_id, allow_closed=True)
    if channel == "wechat":
        # Remembered even before WeChat told the UnionID: a later look-up must not link it back.
        union = s.get(WeChatUnion, external_id)
        if union is not None:
            union.unlinked_at = at
        else:
            s.add(WeChatUnion(openid=external_id, union_id=ident.union_id, seen_at=at, unlinked_at=at))
    s.delete(ident)
    audit(s, actor or channel, "identity_unlink", member_id, channel=channel)
    return member_id


@dataclass(frozen=True)
class UnionNote:
    """What a UnionID told: the member behind the openid (if any) and whether it was linked just now."""

    member_id: int | None
    linked: bool


def note_unionid(s: Session, openid: str, union_id: str, *, now: datetime | None = None) -> UnionNote:
    """Record the UnionID WeChat gave for ``openid``; link the openid to the member another of
    the brand's WeChat identities with the same UnionID belongs to (WeChat vouches for the person).

    Never overrides an existing link, nor an unlink the shopper asked for.
    """
    check_identity("wechat", openid)
    if not isinstance(union_id, str) or not union_id.strip() or len(union_id) > MAX_UNIONID:
        raise InvalidInput("Empty or overlong UnionID.", code="invalid_unionid")
    at = now_or(now)
    union = s.get(WeChatUnion, openid)
    if union is None:
        union = WeChatUnion(openid=openid, union_id=union_id, seen_at=at)
        s.add(union)
    else:
        union.union_id, union.seen_at = union_id, at
    ident = s.execute(
        select(ChannelIdentity).where(ChannelIdentity.channel == "wechat", ChannelIdentity.external_id == openid)
    ).scalar_one_or_none()
    if ident is not None:
        ident.union_id = union_id
        return UnionNote(ident.member_id, False)
    if union.unlinked_at is not None:
        s.flush()
        return UnionNote(None, False)
    siblings = select(WeChatUnion.openid).where(WeChatUnion.union_id == union_id, WeChatUnion.openid != openid)
    owners = set(s.execute(
        select(ChannelIdentity.member_id)
        .join(Member, Member.id == ChannelIdentity.member_id)
        .where(ChannelIdentity.channel == "wechat", Member.status == "active",
               (ChannelIdentity.union_id == union_id) | ChannelIdentity.external_id.in_(siblings))
    ).scalars())
    if len(owners) != 1:  # nobody, or (a data problem) several members: leave it to an SMS code
        s.flush()
        return UnionNote(None, False)
    member_id = owners.pop()
    bind_identity(s, member_id, "wechat", openid)
    s.execute(
        update(ChannelIdentity)
        .where(ChannelIdentity.channel == "wechat", ChannelIdentity.external_id == openid)
        .values(union_id=union_id)
        .execution_options(synchronize_session=False)
    )
    audit(s, "wechat", "identity_link", member_id, channel="wechat", via="unionid")
    return UnionNote(member_id, True)


def forget_member(s: Session, member_id: int) -> None:
    """Erase what linking and member codes keep about a member whose account closes."""
    s.execute(delete(MemberCode).where(MemberCode.member_id == member_id))
    s.execute(delete(MemberCodeKey).where(MemberCodeKey.member_id == member_id))
    s.execute(
        update(LinkChallenge)
        .where(LinkChallenge.member_id == member_id)
        .values(status="void", new_phone=None)
        .execution_options(synchronize_session=False)
    )
