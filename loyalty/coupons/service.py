"""Coupon campaigns: list what may be claimed, claim, exchange points, redeem at the till.

Stock and per-member limits are guarded updates (``issued < total_stock``,
``count < per_member_limit``); a claim is idempotent per (member, request
key); a code is redeemed once by a guarded ``active -> redeemed`` update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from loyalty.audit import audit
from loyalty.catalogue.service import store_id_by_code
from loyalty.common import days, fen_to_yuan, local_date, local_midnight, now_or, random_code
from loyalty.config import settings
from loyalty.coupons.models import Coupon, CouponCampaign, CouponHolding
from loyalty.errors import Conflict, InvalidInput, NotFound, Refused
from loyalty.members.lock import lock_member
from loyalty.members.models import Member, MemberSegment
from loyalty.points import service as points
from loyalty.tiers import service as tiers

KINDS = ("threshold", "percent", "gift")
AUDIENCES = ("public", "welcome", "birthday", "referral", "goodwill")


@dataclass(frozen=True)
class CampaignView:
    """A campaign as the shopper and the bot see it."""

    id: int
    code: str
    name_zh: str
    name_en: str
    kind: str
    threshold: str  # yuan
    discount: str  # yuan
    percent_off: int
    gift_sku: str | None
    points_cost: int
    left: int | None  # stock left; None: unlimited
    claim_end: datetime | None


@dataclass(frozen=True)
class Offer:
    """A campaign a member could claim now, or why not (``reason`` is a stable code)."""

    campaign: CampaignView
    claimable: bool
    reason: str | None  # out_of_stock | limit_reached | tier_too_low | not_in_segment | insufficient_points


@dataclass(frozen=True)
class CouponView:
    """One of the member's coupons."""

    code: str
    campaign: CampaignView
    status: str  # active | redeemed | expired | void
    valid_from: datetime
    valid_until: datetime
    last_day: Any  # date: the last local day it can be used
    claimed_at: datetime


@dataclass(frozen=True)
class Claim:
    """The result of a claim or an exchange."""

    coupon: CouponView
    points_spent: int
    balance: int | None
    replayed: bool  # True when the same request key had already claimed


@dataclass(frozen=True)
class Redemption:
    """A coupon used at the till."""

    code: str
    campaign_code: str
    kind: str
    discount: str  # yuan taken off the order ("0.00" for a gift)
    gift_sku: str | None
    order_ref: str
    redeemed_at: datetime


# Statements of the claim and redeem paths, built once (building costs more than running).
# The guarded updates and the holding insert run on the session's connection, below the ORM's
# execution layer: they load nothing, and no pending object changes what they touch.
_CAMPAIGN_BY_CODE = select(CouponCampaign).where(CouponCampaign.code == bindparam("code"))
_PUBLIC_CAMPAIGNS = (
    select(CouponCampaign)
    .where(CouponCampaign.active.is_(True), CouponCampaign.audience == "public")
    .order_by(CouponCampaign.points_cost, CouponCampaign.id)
)
_SEGMENT = select(MemberSegment.segment).where(MemberSegment.member_id == bindparam("member_id"))
_HOLDINGS = select(CouponHolding.campaign_id, CouponHolding.count).where(
    CouponHolding.member_id == bindparam("member_id")
)
_BY_REQUEST_KEY = select(Coupon).where(
    Coupon.member_id == bindparam("member_id"), Coupon.request_key == bindparam("key")
)
_NEW_COUPON = insert(Coupon)
_NEW_HOLDING = insert(CouponHolding)
_COUNT_UP = (
    update(CouponHolding)
    .where(CouponHolding.member_id == bindparam("holder"), CouponHolding.campaign_id == bindparam("campaign"))
    .values(count=CouponHolding.count + 1)
    .execution_options(synchronize_session=False)
)
_COUNT_UP_WITHIN_LIMIT = _COUNT_UP.where(CouponHolding.count < bindparam("limit"))
_ISSUE_ONE = (
    update(CouponCampaign)
    .where(CouponCampaign.id == bindparam("campaign_id"))
    .values(issued=CouponCampaign.issued + 1)
    .execution_options(synchronize_session=False)
)
_ISSUE_ONE_IN_STOCK = _ISSUE_ONE.where(CouponCampaign.issued < CouponCampaign.total_stock)
_BY_CODE = select(Coupon).options(joinedload(Coupon.campaign)).where(Coupon.code == bindparam("code"))
_REDEEM = (
    update(Coupon)
    .where(Coupon.id == bindparam("coupon_id"), Coupon.status == "active")
    .values(
        status="redeemed",
        redeemed_at=bindparam("at", type_=Coupon.__table__.c.redeemed_at.type),
        redeemed_ref=bindparam("ref", type_=Coupon.__table__.c.redeemed_ref.type),
        redeemed_store_id=bindparam("store_id", type_=Coupon.__table__.c.redeemed_store_id.type),
    )
    .execution_options(synchronize_session=False)
)


def view(c: CouponCampaign) -> CampaignView:
    left = None if c.total_stock is None else c.total_stock - c.issued
    return CampaignView(
        c.id, c.code, c.name_zh, c.name_en, c.kind, fen_to_yuan(c.threshold_fen),
        fen_to_yuan(c.discount_fen), c.percent_off, c.gift_sku, c.points_cost, left, c.claim_end,
    )


def _coupon_view(cp: Coupon, now: datetime) -> CouponView:
    return _view_of(cp.code, cp.campaign, cp.status, cp.valid_from, cp.valid_until, cp.claimed_at, now)


def _view_of(
    code: str, c: CouponCampaign, status: str, valid_from: datetime, valid_until: datetime,
    claimed_at: datetime, now: datetime,
) -> CouponView:
    state = "expired" if status == "active" and valid_until <= now else status
    return CouponView(
        code, view(c), state, valid_from, valid_until,
        # The last local day with any valid moment (valid_until itself is excluded).
        local_date(valid_until - timedelta(microseconds=1)), claimed_at,
    )


_INT_FIELDS = ("threshold_fen", "discount_fen", "percent_off", "total_stock", "per_member_limit",
               "valid_days", "points_cost")
_TIME_FIELDS = ("claim_start", "claim_end", "valid_from", "valid_until")
_TEXT_FIELDS = {"name_zh": 100, "name_en": 100, "gift_sku": 64, "min_tier": 20, "target_segment": 30}


def check_campaign_fields(f: dict[str, Any]) -> None:
    """Types and ranges of the fields, so that junk never reaches the database."""
    bad = InvalidInput  # every complaint below is about the staff's input
    allowed = {c.name for c in CouponCampaign.__table__.columns} - {"id", "issued", "created_at"}
    unknown = set(f) - allowed
    if unknown:
        raise bad(f"Unknown fields: {', '.join(sorted(unknown))}", code="invalid_campaign")
    for name in _INT_FIELDS:
        v = f.get(name)
        if v is None and name in ("total_stock", "valid_days"):
            continue
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10**9):
            raise bad(f"{name} must be a whole number, not negative.", code="invalid_campaign", field=name)
    for name in _TIME_FIELDS:
        v = f.get(name)
        if v is not None and (not isinstance(v, datetime) or v.tzinfo is None):
            raise bad(f"{name} must be a time with a zone.", code="invalid_campaign", field=name)
    for name, limit in _TEXT_FIELDS.items():
        v = f.get(name)
        if v is not None and (not isinstance(v, str) or len(v) > limit):
            raise bad(f"{name} must be text of at most {limit} characters.", code="invalid_campaign", field=name)
    if "active" in f and not isinstance(f["active"], bool):
        raise bad("active must be true or false.", code="invalid_campaign", field="active")
    for start, end in (("claim_start", "claim_end"), ("valid_from", "valid_until")):
        if f.get(start) and f.get(end) and f[start] >= f[end]:
            raise bad(f"{start} must come before {end}.", code="invalid_campaign", field=end)


def create_campaign(s: Session, *, actor: str = "system", **f: Any) -> CampaignView:
    """Create a campaign after checking that its fields make sense."""
    raw_code = f.get("code")
    code = raw_code.strip().upper() if isinstance(raw_code, str) else ""
    if not code or len(code) > 40:
        raise InvalidInput("A campaign needs a code of at most 40 characters.", code="invalid_campaign")
    check_campaign_fields(f)
    kind = f.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", code="invalid_campaign")
    audience = f.get("audience", "public")
    if audience not in AUDIENCES:
        raise InvalidInput(f"audience must be one of {', '.join(AUDIENCES)}", code="invalid_campaign")
    if not f.get("name_zh") or not f.get("name_en"):
        raise InvalidInput("A campaign needs a Chinese and an English name.", code="invalid_campaign")
    discount, threshold = f.get("discount_fen", 0), f.get("threshold_fen", 0)
    # 满减 without a threshold (threshold 0) is a plain voucher.
    if kind == "threshold" and not (discount > 0 and (threshold == 0 or discount <= threshold)):
        raise InvalidInput("满减 needs a discount above 0 and not above the threshold.", code="invalid_campaign")
    if kind == "percent" and not 0 < f.get("percent_off", 0) < 100:
        raise InvalidInput("折扣 needs percent_off between 1 and 99.", code="invalid_campaign")
    if kind == "gift" and not f.get("gift_sku"):
        raise InvalidInput("兑换 needs a gift SKU.", code="invalid_campaign")
    if not f.get("valid_days") and not f.get("valid_until"):
        raise InvalidInput("Give valid_days or valid_until.", code="invalid_campaign")
    if f.get("min_tier") and f["min_tier"] not in [t.code for t in settings().tiers]:
        raise InvalidInput("Unknown tier.", code="invalid_campaign")
    if s.execute(select(CouponCampaign.id).where(CouponCampaign.code == code)).first():
        raise Refused("A campaign with this code exists.", code="campaign_exists")
    c = CouponCampaign(**{**f, "code": code, "issued": 0})
    s.add(c)
    s.flush()
    audit(s, actor, "campaign_create", None, campaign=code)
    return view(c)


def campaign_by_code(s: Session, code: str) -> CouponCampaign:
    """A campaign by its code (case-insensitive), or NotFound ``unknown_campaign``."""
    if not isinstance(code, str):
        raise NotFound("No such campaign.", code="unknown_campaign")
    c = s.execute(_CAMPAIGN_BY_CODE, {"code": code.strip().upper()}).scalar_one_or_none()
    if c is None:
        raise NotFound("No such campaign.", code="unknown_campaign")
    return c


class _Facts:
    """What the claim rules ask about one member, each read once and only if asked."""

    def __init__(self, s: Session, member_id: int, now: datetime) -> None:
        self.s, self.member_id, self.now = s, member_id, now

    @cached_property
    def segment(self) -> str | None:
        return self.s.execute(_SEGMENT, {"member_id": self.member_id}).scalar()

    @cached_property
    def held(self) -> dict[int, int]:
        """Coupons held per campaign id (one query for every campaign)."""
        return dict(self.s.execute(_HOLDINGS, {"member_id": self.member_id}).all())

    @cached_property
    def live_points(self) -> int:
        # Live points: lots past their expiry do not count even before the expiry job ran.
        return points.live_balance(self.s, self.member_id, self.now)


def _why_not(member: Member, c: CouponCampaign, now: datetime, facts: _Facts) -> str | None:
    if not c.active or (c.claim_start and now < c.claim_start) or (c.claim_end and now >= c.claim_end):
        return "not_open"
    if c.valid_until and c.valid_until <= now:
        return "not_open"
    if c.min_tier and tiers.rank(member.tier) < tiers.rank(c.min_tier):
        return "tier_too_low"
    if c.target_segment and facts.segment != c.target_segment:
        return "not_in_segment"
    if c.total_stock is not None and c.issued >= c.total_stock:
        return "out_of_stock"
    if c.per_member_limit and facts.held.get(c.id, 0) >= c.per_member_limit:
        return "limit_reached"
    if c.points_cost and facts.live_points < c.points_cost:
        return "insufficient_points"
    return None


def offers(s: Session, member_id: int, now: datetime | None = None) -> list[Offer]:
    """Public campaigns open now, each with whether the member may claim it and why not."""
    at = now_or(now)
    member = s.get(Member, member_id)
    if member is None:
        raise NotFound("No such member.", code="member_not_found")
    facts = _Facts(s, member_id, at)
    out = []
    for c in s.execute(_PUBLIC_CAMPAIGNS).scalars():
        reason = _why_not(member, c, at, facts)
        if reason != "not_open":
            out.append(Offer(view(c), reason is None, reason))
    return out


MESSAGES = {
    "not_open": "This campaign is not open for claiming.",
    "tier_too_low": "This coupon is for a higher tier.",
    "not_in_segment": "This coupon is for other members.",
    "out_of_stock": "This coupon is all gone.",
    "limit_reached": "You already have as many of this coupon as allowed.",
    "insufficient_points": "Not enough points for this coupon.",
}


def _holding_guard(s: Session, facts: _Facts, c: CouponCampaign, *, enforce_limit: bool = True) -> None:
    """Count one more coupon for the member, refusing past the per-member limit.

    The member is locked (claim and grant take the lock first), so the holding
    row the facts saw, or did not see, is still so: the first coupon inserts
    it (a limit is at least 1), later ones count up under a guard. Were the
    lock ever missing, the unique (member, campaign) constraint refuses a
    second row and :func:`loyalty.db.run` runs the claim again.
    """
    if c.id not in facts.held:
        s.connection().execute(_NEW_HOLDING, {"member_id": facts.member_id, "campaign_id": c.id, "count": 1})
        return
    limited = bool(c.per_member_limit and enforce_limit)
    params = {"holder": facts.member_id, "campaign": c.id, "limit": c.per_member_limit}
    if s.connection().execute(_COUNT_UP_WITHIN_LIMIT if limited else _COUNT_UP, params).rowcount != 1:
        raise Refused(MESSAGES["limit_reached"], code="limit_reached")


def _stock_guard(s: Session, c: CouponCampaign) -> None:
    stmt = _ISSUE_ONE if c.total_stock is None else _ISSUE_ONE_IN_STOCK
    if s.execute(stmt, {"campaign_id": c.id}).rowcount != 1:
        raise Refused(MESSAGES["out_of_stock"], code="out_of_stock")
    s.expire(c, ["issued"])


def _issue(
    s: Session, member: Member, c: CouponCampaign, key: str, at: datetime, *, granted: bool
) -> Claim:
    existing = s.execute(_BY_REQUEST_KEY, {"member_id": member.id, "key": key}).scalar_one_or_none()
    if existing is not None:
        if existing.campaign_id != c.id:
            raise Conflict("This request key claimed another coupon.")
        return Claim(_coupon_view(existing, at), existing.points_spent, member.points_balance, True)
    facts = _Facts(s, member.id, at)
    reason = _why_not(member, c, at, facts)
    if granted and reason in ("not_open", "tier_too_low", "not_in_segment", "insufficient_points",
                              "limit_reached"):
        # A gift from the shop ignores the public claim rules (its key makes it once) but
        # never stock or validity.
        reason = "not_open" if (not c.active or (c.valid_until and c.valid_until <= at)) else None
    if reason is not None:
        raise Refused(MESSAGES[reason], code=reason)
    _holding_guard(s, facts, c, enforce_limit=not granted)
    _stock_guard(s, c)
    spent = c.points_cost if c.points_cost and not granted else 0
    valid_from = max(at, c.valid_from) if c.valid_from else at
    valid_until = _valid_until(c, valid_from)
    code = random_code(12)
    # A Core insert: the answer is made from these values, no object is needed.
    coupon_id = s.connection().execute(_NEW_COUPON, dict(
        code=code, campaign_id=c.id, member_id=member.id, request_key=key, status="active", claimed_at=at,
        valid_from=valid_from, valid_until=valid_until, points_spent=spent, redeemed_at=None, redeemed_ref=None,
        redeemed_store_id=None,
    )).inserted_primary_key[0]
    balance: int | None = None
    if spent:
        # Keyed by the coupon: short and unique (a key built from the member and request
        # key could outgrow the ledger's key column). A refusal rolls the coupon back too.
        mv = points.debit(s, member.id, spent, kind="spend", at=at, key=f"coupon:{coupon_id}",
                          reason=f"coupon {c.code}")
        balance = mv.balance
    return Claim(_view_of(code, c, "active", valid_from, valid_until, at, at), spent, balance, False)


def _valid_until(c: CouponCampaign, at: datetime) -> datetime:
    """A coupon of ``valid_days`` lasts that long from ``at``, then to the end of that local day."""
    end = None
    if c.valid_days:
        end = local_midnight(local_date(at + days(c.valid_days)) + days(1))
    if c.valid_until is not None:
        end = c.valid_until if end is None else min(end, c.valid_until)
    return end if end is not None else local_midnight(local_date(at + days(30)) + days(1))


def claim(
    s: Session, member_id: int, campaign: str | int, *, key: str, now: datetime | None = None
) -> Claim:
    """Claim one coupon of a public campaign, exactly once per ``key``.

    A campaign with a points cost is an exchange: points and stock change
    together or not at all.
    """
    if not isinstance(key, str) or not key.strip() or len(key) > 100:
        raise InvalidInput("A claim needs a request key of at most 100 characters.", code="invalid_key")
    at = now_or(now)
    member = lock_member(s, member_id)
    c = s.get(CouponCampaign, campaign) if isinstance(campaign, int) else campaign_by_code(s, campaign)
    if c is None:
        raise NotFound("No such campaign.", code="unknown_campaign")
    if c.audience != "public":
        raise Refused(MESSAGES["not_open"], code="not_open")
    return _issue(s, member, c, f"claim:{key}", at, granted=False)


def grant(
    s: Session,
    member_id: int,
    campaign_code: str,
    *,
    key: str,
    actor: str = "system",
    now: datetime | None = None,
) -> Claim:
    """Give a member a coupon (welcome, birthday, referral, goodwill): no points, no claim window.

    Once per ``key``; the per-member limit does not apply (the birthday coupon comes every year).
    """
    if not isinstance(key, str) or not key.strip() or len(key) > 100:
        raise InvalidInput("A grant needs a request key of at most 100 characters.", code="invalid_key")
    at = now_or(now)
    member = lock_member(s, member_id)
    c = campaign_by_code(s, campaign_code)
    result = _issue(s, member, c, f"grant:{key}", at, granted=True)
    if not result.replayed and actor != "system":
        audit(s, actor, "coupon_grant", member_id, campaign=c.code, coupon=result.coupon.code)
    return result


def member_coupons(
    s: Session, member_id: int, *, include_used: bool = False, now: datetime | None = None
) -> list[CouponView]:
    """The member's coupons, soonest expiry first (usable ones only unless ``include_used``)."""
    at = now_or(now)
    # The campaigns in the same query: every view needs its campaign.
    q = select(Coupon).options(joinedload(Coupon.campaign)).where(Coupon.member_id == member_id)
    if not include_used:
        q = q.where(Coupon.status == "active", Coupon.valid_until > at)
    q = q.order_by(Coupon.valid_until, Coupon.id)
    return [_coupon_view(cp, at) for cp in s.execute(q).scalars()]


def _redemption(cp: Coupon, order_amount_fen: int) -> Redemption:
    c = cp.campaign
    if c.kind == "threshold":
        off = min(c.discount_fen, order_amount_fen)
    elif c.kind == "percent":
        off = order_amount_fen * c.percent_off // 100
    else:
        off = 0
    assert cp.redeemed_at is not None and cp.redeemed_ref is not None
    return Redemption(cp.code, c.code, c.kind, fen_to_yuan(off), c.gift_sku, cp.redeemed_ref, cp.redeemed_at)


def redeem(
    s: Session,
    code: str,
    *,
    order_ref: str,
    order_amount_fen: int,
    store_code: str | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Use a coupon at the till, exactly once. Replaying the same order gets the same answer."""
    at = now_or(now)
    code = code.strip().upper() if isinstance(code, str) else ""
    order_ref = order_ref.strip() if isinstance(order_ref, str) else ""
    if not code or len(code) > 20:
        raise InvalidInput("A coupon code is needed.", code="invalid_code")
    if not order_ref or len(order_ref) > 100:
        raise InvalidInput("An order reference is needed.", code="invalid_order_ref")
    if not isinstance(order_amount_fen, int) or isinstance(order_amount_fen, bool) or order_amount_fen < 0:
        raise InvalidInput("The order amount must be whole fen, not negative.", code="invalid_amount")
    # The campaign in the same query: the answer needs it, and it is one round trip less.
    cp = s.execute(_BY_CODE, {"code": code}).scalar_one_or_none()
    if cp is None:
        raise NotFound("No such coupon.", code="unknown_coupon")
    if cp.status == "redeemed":
        if cp.redeemed_ref == order_ref:
            return _redemption(cp, order_amount_fen)
        raise Refused("This coupon was already used.", code="already_redeemed")
    if cp.status != "active":
        raise Refused("This coupon is no longer valid.", code="coupon_void")
    if at < cp.valid_from:
        raise Refused("This coupon is not valid yet.", code="not_yet_valid")
    if at >= cp.valid_until:
        raise Refused("This coupon has expired.", code="coupon_expired")
    c = cp.campaign
    if c.kind == "threshold" and order_amount_fen < c.threshold_fen:
        raise Refused(
            f"This coupon needs an order of at least {fen_to_yuan(c.threshold_fen)} yuan.",
            code="threshold_not_met", threshold=fen_to_yuan(c.threshold_fen),
        )
    sid = None
    if store_code:
        sid = store_id_by_code(s, store_code) if isinstance(store_code, str) else None
        if sid is None:
            raise InvalidInput("Unknown store.", code="unknown_store")
    # In UTC, as the row gives it back.
    done = dict(status="redeemed", redeemed_at=at.astimezone(timezone.utc), redeemed_ref=order_ref,
                redeemed_store_id=sid)
    params = {"coupon_id": cp.id, "at": done["redeemed_at"], "ref": order_ref, "store_id": sid}
    res = s.connection().execute(_REDEEM, params)
    if res.rowcount == 1:
        # Our update won: the row holds exactly these values, so the object can say so unread.
        for name, value in done.items():
            set_committed_value(cp, name, value)
        return _redemption(cp, order_amount_fen)
    s.refresh(cp)
    if not (cp.status == "redeemed" and cp.redeemed_ref == order_ref):
        raise Refused("This coupon was already used.", code="already_redeemed")
    # A concurrent twin of the same order won the race: that is a replay, not a refusal.
    return _redemption(cp, order_amount_fen)


def void_member_coupons(s: Session, member_id: int) -> int:
    """Void every active coupon of a member (account closed); returns how many."""
    res = s.execute(
        update(Coupon)
        .where(Coupon.member_id == member_id, Coupon.status == "active")
        .values(status="void")
        .execution_options(synchronize_session=False)
    )
    return res.rowcount
