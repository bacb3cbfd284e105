"""Dashboard figures over a date range, a store and a channel: members, sales, points, coupons, the bot.

Every figure is one SQL query over the core's own rows, scoped by
:class:`Scope`, or, for the sales, points and coupons of a range of whole
days, a sum over the pre-aggregated tables of :mod:`loyalty.reports.rollup`
while they are fresh. A store manager's scope always carries their store: the
web app builds it from the session, never from the request, so the restriction
holds in the query itself. Times are UTC, ranges half-open ``[start, end)``;
per-day figures are by business day (Asia/Shanghai). Definitions (zh and en)
are in :data:`DEFINITIONS`, shown beside each figure.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.conversations.models import BotRating, Conversation
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.handoff.models import Handoff
from loyalty.members.models import Member, MemberSegment
from loyalty.nlu_review.models import ReviewMessage
from loyalty.orders.models import Order
from loyalty.points.models import LedgerEntry, PointsLot
from loyalty.reports import funnel, rollup
from loyalty.reports import segments as segment_moves
from loyalty.reports.scope import Scope, ratio, tier_row

DEFINITIONS: dict[str, tuple[str, str]] = {
    "new_members": ("所选时段内入会的会员数，按入会门店与渠道分组。",
                    "Members who joined in the range, by the store and channel they joined through."),
    "new_members_by_week": ("同上，按周（周一至周日，以周一日期表示）汇总；首尾两周只含所选时段内的日子。",
                            "The same by week (Monday to Sunday, named by its Monday); the first and last "
                            "weeks hold only the days of the range."),
    "active_members": ("所选时段内至少有一笔消费（非退货）的会员数。",
                       "Members with at least one order (not a return) placed in the range."),
    "segments": ("当前 RFM 分群与生命周期阶段的会员数（最近一次计算）。",
                 "Members per RFM segment and lifecycle stage, as of the last segment run."),
    "sales_by_tier": ("按会员当前等级：时段内订单数、购买会员数、客单价（订单金额合计/订单数）、"
                      "购买频次（订单数/购买会员数）；30/90 天复购率＝时段内首单后 30/90 天内再次下单的会员占比。",
                      "By the member's current tier: orders in the range, buying members, average order value "
                      "(sum of amounts / orders), frequency (orders / buying members) and repurchase rate: "
                      "the share of buyers who ordered again within 30 (90) days of their first order in the "
                      "range (that next order may fall after the range)."),
    "points": ("时段内发放（earn/referral/正向调整）、兑换（spend）、过期（expire）的积分；未过期积分余额为负债；"
               "预计沉淀＝负债×历史过期率（过期/(过期+兑换)）。",
               "Points issued (earn, referral, positive adjustments), spent and expired in the range; liability is "
               "the points left in unexpired lots now; expected breakage = liability × the historical expiry rate "
               "(expired / (expired + spent))."),
    "coupons": ("按活动：时段内领取数、核销数、核销率（核销/领取）、用券订单金额、"
                "优惠成本（满减面额；折扣按订单金额计）。",
                "Per campaign: coupons claimed in the range, of those redeemed, redemption rate (redeemed / "
                "claimed), revenue of the orders that used them, discount cost (the face value of 满减; for 折扣 "
                "the percentage of the order)."),
    "conversations": ("按日（开始时间）与渠道：时段内开始的对话数（同一用户两条消息间隔超过 4 小时即为新对话）、"
                      "自助解决（全程未转人工）与转人工的对话数、用户消息数与未理解（nlu_fallback）消息数。"
                      "门店筛选：该门店会员的对话（未识别的访客不计入门店）。",
                      "By day (of the start) and channel: conversations started in the range (a sender's messages "
                      "with no gap over 4 hours), contained (never handed to an agent) and handed off, shopper "
                      "messages and those not understood (nlu_fallback). Store filter: conversations of that "
                      "store's members (unidentified visitors belong to no store)."),
    "bot": ("时段内开始的对话数；自助解决率＝未转人工的对话／对话数；"
            "转人工率（按原因）＝时段内该原因的转人工次数／对话数；"
            "未理解率＝未理解的消息／机器人应答的消息（人工接待期间的消息不计）；"
            "等待时长＝接入时间－请求时间（p50/p90，仅已接入的）；满意度＝人工会话评分均值（1-5）；"
            "机器人满意度＝未转人工的对话结束（道别）时用户给机器人的评分均值（1-5，按评分时间计入时段）；"
            "未理解消息＝复核列表中时段内最后出现的消息，按出现次数排序。",
            "Conversations started in the range; containment = conversations never handed to an agent / "
            "conversations; handoff rate by reason = handoffs of that reason started in the range / "
            "conversations; "
            "fallback rate = messages not understood / messages the bot answered (not those while an agent had the "
            "conversation); wait = taken minus requested (p50/p90, taken ones only); satisfaction = mean rating of "
            "agent conversations (1-5); bot satisfaction = mean rating shoppers gave the bot when saying goodbye "
            "after a conversation never handed to an agent (1-5, counted in the range by when rated); not "
            "understood = review-list messages last seen in the range, most frequent first."),
}


def new_members(s: Session, sc: Scope) -> list[dict[str, Any]]:
    """Members who joined per day, store and channel."""
    day = rollup.local_day(s, Member.created_at)
    q = (select(day.label("day"), Store.code, Member.join_channel, func.count())
         .select_from(Member).outerjoin(Store, Store.id == Member.store_id)
         .where(Member.created_at >= sc.start, Member.created_at < sc.end)
         .group_by(day, Store.code, Member.join_channel).order_by(day, Store.code, Member.join_channel))
    if sc.store_id is not None:
        q = q.where(Member.store_id == sc.store_id)
    if sc.channel:
        q = q.where(Member.join_channel == sc.channel)
    return [{"day": d, "store": st or "", "channel": ch or "", "members": n} for d, st, ch, n in s.execute(q)]


def by_week(days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`new_members`' rows summed per week (Monday to Sunday, named by its Monday), store and channel.

    The first and last weeks hold only the range's days (a range need not start on a Monday)."""
    weeks: dict[tuple[str, str, str], int] = {}
    for r in days:
        d = date.fromisoformat(r["day"])
        key = ((d - timedelta(days=d.weekday())).isoformat(), r["store"], r["channel"])
        weeks[key] = weeks.get(key, 0) + r["members"]
    return [{"week": w, "store": st, "channel": ch, "members": n} for (w, st, ch), n in sorted(weeks.items())]


def _orders(sc: Scope) -> list[Any]:
    where = [Order.kind == "order", Order.member_id.is_not(None), Order.placed_at >= sc.start,
             Order.placed_at < sc.end]
    if sc.store_id is not None:
        where.append(Order.store_id == sc.store_id)
    if sc.channel:
        where.append(Order.channel == sc.channel)
    return where


def active_members(s: Session, sc: Scope) -> int:
    """Members with at least one order in the range."""
    return s.execute(select(func.count(func.distinct(Order.member_id))).where(*_orders(sc))).scalar() or 0


def segments(s: Session, sc: Scope) -> list[dict[str, Any]]:
    """Members per (lifecycle, segment), of the store's members when scoped to a store."""
    q = (select(MemberSegment.lifecycle, MemberSegment.segment, func.count())
         .group_by(MemberSegment.lifecycle, MemberSegment.segment)
         .order_by(MemberSegment.lifecycle, MemberSegment.segment))
    if sc.store_id is not None:
        q = q.join(Member, Member.id == MemberSegment.member_id).where(Member.store_id == sc.store_id)
    return [{"lifecycle": lc, "segment": sg, "members": n} for lc, sg, n in s.execute(q)]


def sales_by_tier(s: Session, sc: Scope) -> list[dict[str, Any]]:
    """Orders, buyers, average order value (fen), frequency and repurchase rates per current tier.

    One statement: the range's orders are summed per member once (count, amount, first order), and
    each buyer's next order after that first one is a single index probe on (member, placed_at).
    """
    mine = (select(Order.member_id.label("member_id"), func.count(Order.id).label("n"),
                   func.sum(Order.amount_fen).label("fen"), func.min(Order.placed_at).label("first"))
            .where(*_orders(sc)).group_by(Order.member_id).subquery())
    later = aliased(Order)
    after = [later.kind == "order", later.member_id == mine.c.member_id, later.placed_at > mine.c.first]
    if sc.store_id is not None:
        after.append(later.store_id == sc.store_id)
    if sc.channel:
        after.append(later.channel == sc.channel)
    per = (select(Member.tier.label("tier"), mine.c.n, mine.c.fen, mine.c.first,
                  select(func.min(later.placed_at)).where(*after).scalar_subquery().label("again"))
           # OFFSET 0 keeps PostgreSQL from inlining this subquery, which would probe twice (30 and 90 days).
           .select_from(mine).join(Member, Member.id == mine.c.member_id).offset(0).subquery())

    def within(days: int) -> Any:
        return func.sum(case((per.c.again <= db.plus_days(s, per.c.first, days), 1), else_=0))

    q = (select(per.c.tier, func.sum(per.c.n), func.count(), func.sum(per.c.fen), within(30), within(90))
         .group_by(per.c.tier).order_by(per.c.tier))
    return [tier_row(t, int(n), b, int(total), int(r30 or 0), int(r90 or 0))
            for t, n, b, total, r30, r90 in s.execute(q)]


def _ledger_sums(s: Session, sc: Scope) -> tuple[int, int, int, int, int]:
    """Issued, spent, expired in the range and spent, expired ever: one pass over the ledger."""
    kind = LedgerEntry.kind
    inside = and_(LedgerEntry.created_at >= sc.start, LedgerEntry.created_at < sc.end)
    issued = case((and_(inside, kind.in_(rollup.ISSUED_KINDS), LedgerEntry.delta > 0),
                   LedgerEntry.delta), else_=0)

    def total(expr: Any) -> Any:
        return func.coalesce(func.sum(expr), 0)

    q = select(total(issued), total(case((and_(inside, kind == "spend"), -LedgerEntry.delta), else_=0)),
               total(case((and_(inside, kind == "expire"), -LedgerEntry.delta), else_=0)),
               total(case((kind == "spend", -LedgerEntry.delta), else_=0)),
               total(case((kind == "expire", -LedgerEntry.delta), else_=0)))
    q = q.where(*sc.of_store(LedgerEntry.member_id))
    got, spent, expired, all_spent, all_expired = (int(x) for x in s.execute(q).one())
    return got, spent, expired, all_spent, all_expired


def liability(s: Session, sc: Scope, now: datetime) -> int:
    """Points left in lots that have not expired by ``now``.

    A member's balance is the sum of their lots' remaining points (the points
    core's invariant), so this is the balances less the few lots past their
    date that the expiry job has not booked yet: no pass over every lot.
    """
    held = select(func.coalesce(func.sum(Member.points_balance), 0))
    overdue = (select(func.coalesce(func.sum(PointsLot.remaining), 0))
               .where(PointsLot.remaining > 0, PointsLot.expires_at <= now, *sc.of_store(PointsLot.member_id)))
    if sc.store_id is not None:
        held = held.where(Member.store_id == sc.store_id)
    return int(s.execute(held).scalar() or 0) - int(s.execute(overdue).scalar() or 0)


def points(s: Session, sc: Scope, now: datetime,
           sums: tuple[int, int, int, int, int] | None = None) -> dict[str, Any]:
    """Points issued, spent, expired in the range; liability now and its expected breakage.

    ``sums`` (issued, spent, expired in the range; spent and expired ever) come from the
    pre-aggregated days when the dashboard has them, else from the ledger.
    """
    got, spent, expired, all_spent, all_expired = _ledger_sums(s, sc) if sums is None else sums
    owed = liability(s, sc, now)
    rate = ratio(all_expired, all_spent + all_expired)
    return {"issued": got, "spent": spent, "expired": expired, "liability": owed,
            "expiry_rate": rate, "expected_breakage": round(owed * rate) if rate is not None else None}


def _coupon_counts(s: Session, sc: Scope) -> dict[int, tuple[int, int, int]]:
    """Per campaign id: coupons claimed in the range, of those redeemed, revenue of the redeeming orders."""
    where = [Coupon.claimed_at >= sc.start, Coupon.claimed_at < sc.end, *sc.of_store(Coupon.member_id)]
    redeemed = Coupon.status == "redeemed"
    counts = s.execute(select(Coupon.campaign_id, func.count(Coupon.id), func.sum(case((redeemed, 1), else_=0)))
                       .where(*where).group_by(Coupon.campaign_id))
    revenue = dict(s.execute(
        select(Coupon.campaign_id, func.coalesce(func.sum(Order.amount_fen), 0))
        .join(Order, and_(Order.external_id == Coupon.redeemed_ref, Order.kind == "order"))
        .where(*where, redeemed).group_by(Coupon.campaign_id)).all())
    return {cid: (int(n), int(used or 0), int(revenue.get(cid, 0))) for cid, n, used in counts}


def coupons(s: Session, sc: Scope, counts: dict[int, tuple[int, int, int]] | None = None) -> list[dict[str, Any]]:
    """Per campaign: claimed, redeemed, redemption rate, revenue and discount cost of the redeeming orders.

    ``counts`` come from the pre-aggregated days when the dashboard has them, else from the coupons."""
    counts = _coupon_counts(s, sc) if counts is None else counts
    if not counts:
        return []
    q = (select(CouponCampaign.id, CouponCampaign.code, CouponCampaign.kind, CouponCampaign.discount_fen,
                CouponCampaign.percent_off, CouponCampaign.issued)
         .where(CouponCampaign.id.in_(list(counts))).order_by(CouponCampaign.code))
    out = []
    for cid, code, kind, disc, pct, issued in s.execute(q):
        claimed, used, rev = counts[cid]
        cost = disc * used if kind == "threshold" else rev * pct // 100 if kind == "percent" else 0
        out.append({"campaign": code, "issued_total": issued, "claimed": claimed, "redeemed": used,
                    "redemption_rate": ratio(used, claimed), "revenue_fen": rev, "discount_cost_fen": cost})
    return out


def _in_scope(sc: Scope, at: Any, member: Any, channel: Any) -> list[Any]:
    """Rows of a conversation-side table (by its time, member and channel columns) the scope covers."""
    return [at >= sc.start, at < sc.end, *sc.of_store(member), *([channel == sc.channel] if sc.channel else [])]


def conversations(s: Session, sc: Scope) -> list[dict[str, Any]]:
    """Conversations per day and channel: started, contained, handed off, shopper turns, fallbacks."""
    day = rollup.local_day(s, Conversation.started_at)
    handed = func.sum(case((Conversation.handed_off.is_(True), 1), else_=0))
    q = (select(day, Conversation.channel, func.count(), handed, func.sum(Conversation.user_turns),
                func.sum(Conversation.agent_turns), func.sum(Conversation.fallback_turns))
         .where(*_in_scope(sc, Conversation.started_at, Conversation.member_id, Conversation.channel))
         .group_by(day, Conversation.channel).order_by(day, Conversation.channel))
    return [{"day": d, "channel": ch, "conversations": n, "contained": n - int(h or 0), "handed_off": int(h or 0),
             "user_turns": int(turns or 0), "bot_turns": int(turns or 0) - int(agent or 0),
             "fallback_turns": int(fb or 0)} for d, ch, n, h, turns, agent, fb in s.execute(q)]


def _percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0..100) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def bot(s: Session, sc: Scope, top: int = 10, convs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Conversations, containment, handoffs and their rate by reason, fallback rate, wait to an agent p50/p90
    (seconds), agent and bot satisfaction, messages not understood."""
    where = _in_scope(sc, Handoff.created_at, Handoff.member_id, Handoff.channel)
    by_reason = {r: n for r, n in s.execute(select(Handoff.reason, func.count()).where(*where)
                                            .group_by(Handoff.reason).order_by(Handoff.reason))}
    waits = [(t - c).total_seconds() for c, t in s.execute(
        select(Handoff.created_at, Handoff.taken_at).where(*where, Handoff.taken_at.is_not(None)))]
    rated = s.execute(select(func.count(Handoff.rating), func.avg(Handoff.rating)).where(*where)).one()
    bot_rated = s.execute(select(func.count(BotRating.id), func.avg(BotRating.rating))
                          .where(*_in_scope(sc, BotRating.rated_at, BotRating.member_id, BotRating.channel))).one()
    convs = conversations(s, sc) if convs is None else convs
    n = sum(r["conversations"] for r in convs)
    bot_turns = sum(r["bot_turns"] for r in convs)
    out: dict[str, Any] = {
        "conversations": n, "contained": sum(r["contained"] for r in convs),
        "containment": ratio(sum(r["contained"] for r in convs), n),
        "handoff_rate": {r: ratio(k, n) for r, k in by_reason.items()},
        "bot_turns": bot_turns, "fallback_turns": sum(r["fallback_turns"] for r in convs),
        "fallback_rate": ratio(sum(r["fallback_turns"] for r in convs), bot_turns),
        "handoffs": sum(by_reason.values()), "by_reason": by_reason,
        "wait_p50_s": _percentile(waits, 50), "wait_p90_s": _percentile(waits, 90),
        "rated": rated[0], "satisfaction": round(float(rated[1]), 2) if rated[1] is not None else None,
        "bot_rated": bot_rated[0],
        "bot_satisfaction": round(float(bot_rated[1]), 2) if bot_rated[1] is not None else None,
        "not_understood": [],
    }
    if sc.store_id is None:  # the review list is not attributed to stores
        rq = (select(ReviewMessage.text, ReviewMessage.seen, ReviewMessage.intent)
              .where(ReviewMessage.last_seen_at >= sc.start, ReviewMessage.last_seen_at < sc.end)
              .order_by(ReviewMessage.seen.desc(), ReviewMessage.id).limit(top))
        if sc.channel:
            rq = rq.where(ReviewMessage.channel == sc.channel)
        out["not_understood"] = [{"text": t, "seen": n, "suggested": i or ""} for t, n, i in s.execute(rq)]
    return out


def dashboard(s: Session, sc: Scope, now: datetime, *, tables: bool = True) -> dict[str, Any]:
    """Every figure of the dashboard for one scope; ``tables=False`` computes all of them live."""
    db.without_jit(s)
    convs = conversations(s, sc)
    joined = new_members(s, sc)
    as_of = rollup.fresh_as_of(s, now) if tables else None
    rolled_sales = rollup.sales_by_tier(s, sc) if as_of else None
    sums = rollup.points_sums(s, sc) if as_of else None
    coupon_counts = rollup.coupon_counts(s, sc) if as_of else None
    sales = sales_by_tier(s, sc) if rolled_sales is None else rolled_sales
    rolled = [name for name, got in (("sales_by_tier", rolled_sales), ("active_members", rolled_sales),
                                     ("points", sums), ("coupons", coupon_counts)) if got is not None]
    return {
        # Every buyer has one current tier: the buyers per tier add up to the active members.
        "new_members": joined, "new_members_by_week": by_week(joined),
        "active_members": sum(r["buyers"] for r in sales),
        "segments": segments(s, sc), "sales_by_tier": sales, "points": points(s, sc, now, sums),
        "coupons": coupons(s, sc, coupon_counts),
        "conversations": convs, "bot": bot(s, sc, convs=convs), "qr_funnel": funnel.qr_funnel(s, sc),
        "definitions": {**DEFINITIONS, **funnel.DEFINITIONS},
        "segment_moves": segment_moves.moves(s, sc),
        "as_of": now.isoformat(),
        # Figures read from the pre-aggregated tables, and as of when (the rest are live as of "as_of").
        "rolled_up": {"figures": rolled, "as_of": as_of.isoformat() if as_of and rolled else None,
                      "every_seconds": rollup.settings().refresh_seconds},
    }
