"""A member's account as the shopper sees it: joining (consent, welcome gift, referral), the member card, closing."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.catalogue.service import store_id_by_code
from loyalty.common import local_date, now_or, random_code
from loyalty.config import settings
from loyalty.conversations import service as conversations
from loyalty.coupons import service as coupons
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.identity import service as identity
from loyalty.members.lock import lock_member
from loyalty.members.models import ChannelIdentity, Member, SegmentMove
from loyalty.members.service import check_identity, check_language, identity_owner, mask_phone, normalize_phone
from loyalty.points import service as points
from loyalty.referrals import service as referrals
from loyalty.visits import service as visits

# The look-ups of signup and of the bot's first question, built once.
_BY_PHONE = select(Member.id).where(Member.phone == bindparam("phone"))


_BY_REFERRAL_CODE = select(Member.id).where(Member.referral_code == bindparam("code"))


_ACTIVE_BY_REFERRAL_CODE = _BY_REFERRAL_CODE.where(Member.status == "active")


_BY_IDENTITY = (
    select(Member.id)
    .join(ChannelIdentity, ChannelIdentity.member_id == Member.id)
    .where(ChannelIdentity.channel == bindparam("channel"), ChannelIdentity.external_id == bindparam("external_id"))
    .where(Member.status == "active")
)


@dataclass(frozen=True)
class MemberCard:
    """What a member and an agent see first: no full phone number."""

    id: int
    name: str | None
    phone_masked: str
    tier: str
    tier_name_zh: str
    tier_name_en: str
    points: int
    referral_code: str
    store_code: str | None
    joined_at: datetime
    marketing_opt_in: bool
    language: str = "zh"  # the language the member chats in; outreach writes in it


@dataclass(frozen=True)
class Signup:
    """The result of joining."""

    card: MemberCard
    welcome_coupon: str | None
    referral_rewarded: bool


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = unicodedata.normalize("NFKC", str(name)).strip()
    if not name:
        return None
    if len(name) > 50 or any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput("Please give a name of at most 50 characters.", code="invalid_name")
    return name


def _check_birthday(b: date | str | None, today: date) -> date | None:
    """A real past date; an ISO string ("1990-05-01") is accepted too."""
    if b is None:
        return None
    if isinstance(b, str):
        try:
            b = date.fromisoformat(b.strip())
        except ValueError:
            raise InvalidInput("That birthday does not look right.", code="invalid_birthday") from None
    # A datetime is a date subclass but cannot be compared with one: refuse it clearly.
    if not isinstance(b, date) or isinstance(b, datetime) or b > today or b.year < 1900:
        raise InvalidInput("That birthday does not look right.", code="invalid_birthday")
    return b


def card(s: Session, member_id: int) -> MemberCard:
    """The member card of an active member."""
    m = s.get(Member, member_id)
    if m is None or m.status != "active":
        raise NotFound("No such member.", code="member_not_found")
    t = settings().tier(m.tier)
    # Live lots, like points.summary: a lot past its expiry is gone even before the job runs.
    return MemberCard(
        m.id, m.name, mask_phone(m.phone), m.tier, t.name_zh, t.name_en, points.live_balance(s, m.id),
        m.referral_code, m.store.code if m.store else None, m.created_at, m.marketing_opt_in, m.language,
    )


def by_identity(s: Session, channel: str, external_id: str) -> MemberCard | None:
    """The member behind a channel address (a WeChat openid, a web chat visitor), if any."""
    mid = s.execute(_BY_IDENTITY, {"channel": channel, "external_id": external_id}).scalar()
    return card(s, mid) if mid else None


def by_phone(s: Session, phone: str) -> MemberCard | None:
    mid = s.execute(_BY_PHONE, {"phone": normalize_phone(phone)}).scalar()
    return card(s, mid) if mid else None


def _new_referral_code(s: Session) -> str:
    for _ in range(20):
        code = random_code(6)
        if not s.execute(_BY_REFERRAL_CODE, {"code": code}).first():
            return code
    raise RuntimeError("could not draw a free referral code")


def signup(
    s: Session,
    *,
    phone: str,
    consent: bool,
    consent_version: str | None = None,
    name: str | None = None,
    birthday: date | str | None = None,
    store_code: str | None = None,
    referral_code: str | None = None,
    channel: str | None = None,
    external_id: str | None = None,
    language: str = "zh",
    now: datetime | None = None,
) -> Signup:
    """Make a shopper a member: consent first, a valid phone, one member per phone.

    Binds the channel address, attributes the store and the referrer, and
    gives the welcome coupon and (when configured so) the referral rewards.
    ``language`` is the conversation's ("zh" or "en"): outreach writes in it.
    """
    at = now_or(now)
    st = settings()
    if consent is not True:
        raise Refused("Joining needs your consent to the privacy notice.", code="consent_required")
    number = normalize_phone(phone)
    clean_name = _clean_name(name)
    bday = _check_birthday(birthday, local_date(at))
    if channel is not None:
        check_identity(channel, external_id)
    language = check_language(language)
    if consent_version is not None and not (isinstance(consent_version, str) and 0 < len(consent_version) <= 20):
        raise InvalidInput("Unknown privacy notice version.", code="invalid_consent_version")
    store_id = None
    if store_code:
        if isinstance(store_code, str):
            store_id = store_id_by_code(s, store_code)
        if store_id is None:
            raise InvalidInput("Unknown store.", code="unknown_store")
    referrer_id = None
    if referral_code:
        if isinstance(referral_code, str):
            referrer_id = s.execute(_ACTIVE_BY_REFERRAL_CODE, {"code": referral_code.strip().upper()}).scalar()
        if referrer_id is None:
            raise InvalidInput("Unknown referral code.", code="unknown_referral_code")
    if s.execute(_BY_PHONE, {"phone": number}).first():
        raise Refused("This phone number is already a member.", code="already_member")
    if channel and external_id:
        if identity_owner(s, channel, external_id) is not None:
            raise Refused("This chat already belongs to a member.", code="already_member")
    m = Member(
        phone=number, name=clean_name, birthday=bday, referral_code=_new_referral_code(s),
        referred_by_id=referrer_id, store_id=store_id, join_channel=channel,
        tier=st.tiers[0].code, points_balance=0,
        consent_version=consent_version or st.privacy_notice_version, consent_at=at,
        marketing_opt_in=True, language=language, status="active", created_at=at,
    )
    s.add(m)
    s.flush()
    if channel and external_id:
        s.add(ChannelIdentity(member_id=m.id, channel=channel, external_id=external_id, created_at=at))
    audit(s, channel or "system", "signup", m.id, consent_version=m.consent_version, store_id=store_id)
    welcome = None
    if st.welcome_campaign:
        try:
            # A savepoint: a grant refused half-way (stock gone) must leave no counter behind.
            with s.begin_nested():
                welcome = coupons.grant(s, m.id, st.welcome_campaign, key="welcome", now=at).coupon.code
        except (NotFound, Refused):
            welcome = None  # no welcome campaign configured, or its stock is gone
    rewarded = False
    if referrer_id is not None:
        rewarded = referrals.record(s, referrer_id, m.id, at)
    s.flush()
    return Signup(card(s, m.id), welcome, rewarded)


def close_account(s: Session, member_id: int, *, actor: str, now: datetime | None = None) -> int:
    """Close an account: forfeit points (kept in the ledger), void coupons, erase personal data, segment moves,
    QR visits and bot conversation scores.

    Returns the points forfeited. Ledger, orders and referral rows stay for
    the books, linked only to the anonymous member id.
    """
    at = now_or(now)
    m = lock_member(s, member_id)
    points.expire_member(s, member_id, at)
    s.refresh(m)
    left = m.points_balance
    if left:
        points.debit(s, member_id, left, kind="close", at=at, reason="account closed")
    coupons.void_member_coupons(s, member_id)
    addresses = s.execute(select(ChannelIdentity.channel, ChannelIdentity.external_id)
                          .where(ChannelIdentity.member_id == member_id)).all()
    for channel, address in addresses:
        visits.forget_visitor(s, channel, address)  # their QR visits, before and after joining
    # Their scores of bot conversations, before and after joining.
    conversations.forget_member(s, member_id, [address for _, address in addresses])
    s.execute(delete(ChannelIdentity).where(ChannelIdentity.member_id == member_id))
    # The member's segment history is a profile of them: it goes (the next segment run drops the current one).
    s.execute(delete(SegmentMove).where(SegmentMove.member_id == member_id))
    identity.forget_member(s, member_id)
    s.refresh(m)
    m.phone = None
    m.name = None
    m.birthday = None
    m.marketing_opt_in = False
    m.status = "closed"
    m.closed_at = at
    audit(s, actor, "account_close", member_id, forfeited=left)
    return left
