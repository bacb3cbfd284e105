"""The journeys: who is due for which step on which occasion, and the zh/en copy of each step.

A finder looks at the state the core already keeps (signups, orders, points
lots, coupons, tier changes, lifecycle stages, birthdays) as of ``now`` and
returns candidates; the sends ledger's idempotency key makes finding the same
candidate again harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from loyalty.common import local_date, local_midnight
from loyalty.config import settings as core_settings
from loyalty.coupons.gifts import birthday_in_year
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.members.models import Member, MemberSegment
from loyalty.orders.models import Order
from loyalty.points.models import PointsLot
from loyalty.tiers import service as tiers
from loyalty.tiers.models import TierChange

SERVICE, MARKETING = "service", "marketing"


@dataclass(frozen=True)
class Candidate:
    member_id: int
    step: str
    occasion: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # service notices may go as WeChat template messages; marketing never
    zh: str
    en: str


@dataclass(frozen=True)
class Journey:
    name: str
    steps: dict[str, Step]
    find: Callable[[Session, datetime], list[Candidate]]


def _day_range(d: date) -> tuple[datetime, datetime]:
    return local_midnight(d), local_midnight(d + timedelta(days=1))


def _welcome(s: Session, now: datetime) -> list[Candidate]:
    active = (Member.status == "active",)
    out = [Candidate(mid, "day0", "join") for mid in s.execute(
        select(Member.id).where(*active, Member.created_at > now - timedelta(days=1), Member.created_at <= now)
    ).scalars()]
    start, end = now - timedelta(days=4), now - timedelta(days=3)
    no_order = ~exists().where(Order.member_id == Member.id, Order.kind == "order")
    out += [Candidate(mid, "day3", "join") for mid in s.execute(
        select(Member.id).where(*active, Member.created_at > start, Member.created_at <= end, no_order)
    ).scalars()]
    return out


def _birthday(s: Session, now: datetime) -> list[Candidate]:
    """Birthdays celebrated within the coming week (29 February: 28 February in common years)."""
    today = local_date(now)
    week = {today + timedelta(days=i) for i in range(7)}
    rows = s.execute(select(Member.id, Member.birthday).where(Member.status == "active", Member.birthday.is_not(None)))
    out = []
    for mid, b in rows:
        for year in {d.year for d in week}:
            day = birthday_in_year(b, year)
            if day in week:
                out.append(Candidate(mid, "week", str(year), {"date": day.isoformat()}))
    return out


def _points_expiring(s: Session, now: datetime) -> list[Candidate]:
    today = local_date(now)
    out = []
    for n in (30, 7):
        day = today + timedelta(days=n)
        start, end = _day_range(day)
        rows = s.execute(
            select(PointsLot.member_id, func.sum(PointsLot.remaining))
            .join(Member, Member.id == PointsLot.member_id)
            .where(Member.status == "active", PointsLot.remaining > 0, PointsLot.expires_at >= start,
                   PointsLot.expires_at < end)
            .group_by(PointsLot.member_id)
        )
        out += [Candidate(mid, f"d{n}", day.isoformat(), {"points": int(pts), "date": day.isoformat()})
                for mid, pts in rows]
    return out


def _coupon_expiring(s: Session, now: datetime) -> list[Candidate]:
    day = local_date(now) + timedelta(days=3)
    start, end = _day_range(day)
    rows = s.execute(
        select(Coupon.member_id, Coupon.id, CouponCampaign.name_zh, CouponCampaign.name_en)
        .join(CouponCampaign, CouponCampaign.id == Coupon.campaign_id)
        .join(Member, Member.id == Coupon.member_id)
        .where(Member.status == "active", Coupon.status == "active", Coupon.valid_until >= start,
               Coupon.valid_until < end)
    )
    return [Candidate(mid, "d3", f"coupon{cid}", {"coupon_zh": zh, "coupon_en": en, "date": day.isoformat()})
            for mid, cid, zh, en in rows]


def _upgrades(s: Session, now: datetime) -> list[Candidate]:
    rows = s.execute(
        select(TierChange.member_id, TierChange.id, TierChange.to_tier)
        .where(TierChange.reason == "upgrade", TierChange.changed_at > now - timedelta(days=1),
               TierChange.changed_at <= now)
    )
    return [Candidate(mid, "upgrade", f"change{cid}", {"tier": tier}) for mid, cid, tier in rows]


KEEP_NOTICE_DAYS = 30


def _tier(s: Session, now: datetime) -> list[Candidate]:
    return _upgrades(s, now) + _keep(s, now)


def _keep(s: Session, now: datetime) -> list[Candidate]:
    """30 days before a review that would move a member down: how much more to spend to keep the tier.

    The growth counted is what the review window will hold if the member buys nothing more."""
    review = tiers.next_boundary(now)
    if local_date(review) != local_date(now) + timedelta(days=KEEP_NOTICE_DAYS):
        return []
    st = core_settings()
    out = []
    for mid, code in s.execute(select(Member.id, Member.tier).where(Member.status == "active",
                                                                     Member.tier != st.tiers[0].code)):
        short = st.tier(code).threshold - tiers.growth_in_window(s, mid, review)
        if short > 0:
            out.append(Candidate(mid, "keep", local_date(review).isoformat(),
                                 {"tier": code, "yuan": short, "date": local_date(review).isoformat()}))
    return out


def _wakeup(s: Session, now: datetime) -> list[Candidate]:
    """Members the segment job found dormant; the occasion is their last order (one wake-up per lapse)."""
    last = (select(func.max(Order.placed_at)).where(Order.member_id == MemberSegment.member_id,
                                                     Order.kind == "order").scalar_subquery())
    rows = s.execute(select(MemberSegment.member_id, last).where(MemberSegment.lifecycle == "dormant"))
    return [Candidate(mid, "dormant", f"last{local_date(at).isoformat() if at else 'none'}") for mid, at in rows]


def _after_purchase(s: Session, now: datetime) -> list[Candidate]:
    rows = s.execute(
        select(Order.member_id, Order.id, Order.points).join(Member, Member.id == Order.member_id)
        .where(Member.status == "active", Order.kind == "order", Order.placed_at > now - timedelta(days=1),
               Order.placed_at <= now)
    )
    return [Candidate(mid, "thanks", f"order{oid}", {"points": int(pts), "order_id": oid}) for mid, oid, pts in rows]


def _steps(*steps: Step) -> dict[str, Step]:
    return {st.name: st for st in steps}


JOURNEYS: dict[str, Journey] = {j.name: j for j in (
    Journey("welcome", _steps(
        Step("day0", MARKETING, "欢迎入会！入会礼券已放入您的卡包。每消费1元得1积分，积分可换券。",
             "Welcome! Your welcome coupon is in your wallet. Earn 1 point per ¥1; swap points for coupons."),
        Step("day3", MARKETING, "还没逛过门店？离您最近的是{store_zh}。为您推荐：{reco_zh}",
             "Not been in yet? Your nearest store is {store_en}. You might like: {reco_en}"),
    ), _welcome),
    Journey("birthday", _steps(
        Step("week", MARKETING, "生日快乐🎂 您的生日礼券已到账，{date}前后一周都可使用。",
             "Happy birthday! Your birthday coupon is ready; use it around {date}."),
    ), _birthday),
    Journey("points_expiring", _steps(
        Step("d30", SERVICE, "您有{points}积分将于{date}到期，可兑换优惠券，别浪费哦。",
             "{points} points expire on {date}. Swap them for a coupon before then."),
        Step("d7", SERVICE, "提醒：{points}积分将于{date}到期，还剩7天。",
             "Reminder: {points} points expire on {date}, 7 days left."),
    ), _points_expiring),
    Journey("coupon_expiring", _steps(
        Step("d3", SERVICE, "您的「{coupon_zh}」将于{date}到期，记得使用。",
             "Your \"{coupon_en}\" expires on {date}. Don't miss it."),
    ), _coupon_expiring),
    Journey("tier", _steps(
        Step("upgrade", SERVICE, "恭喜升级为{tier_zh}！新权益已生效。",
             "Congratulations, you are now {tier_en}! Your new benefits apply."),
        # Urging a purchase is marketing, even about a tier: never a template message.
        Step("keep", MARKETING, "再消费¥{yuan}，{date}前即可保级{tier_zh}。",
             "Spend ¥{yuan} more before {date} to keep {tier_en}."),
    ), _tier),
    Journey("wakeup", _steps(
        Step("dormant", MARKETING, "好久不见！{gift_zh}也许您会喜欢：{reco_zh}",
             "We miss you! {gift_en}You may like: {reco_en}"),
    ), _wakeup),
    Journey("after_purchase", _steps(
        Step("thanks", MARKETING, "感谢购买！本单获得{points}积分。搭配推荐：{reco_zh}",
             "Thanks for shopping! You earned {points} points. Goes well with it: {reco_en}"),
    ), _after_purchase),
)}


def broadcast_step(text_zh: str, text_en: str) -> Step:
    return Step("main", MARKETING, text_zh, text_en)
