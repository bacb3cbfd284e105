"""The QR funnel per store: visitors through a store's code or link → follows / page opens → signups.

Visits are the core's ``qr_visits`` rows (loyalty/visits/), signups the
members who joined through the store. Scoped like every other figure by
:class:`~loyalty.reports.scope.Scope`: a store manager's scope always
carries their store, so the restriction holds in the queries themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from loyalty.catalogue.models import Store
from loyalty.members.models import Member
from loyalty.reports.scope import Scope, ratio
from loyalty.visits.models import QrVisit

DEFINITIONS: dict[str, tuple[str, str]] = {
    "qr_funnel": ("按门店，时段内：访客＝通过门店二维码或链接到达的不同访客数（微信扫码、扫码关注、网页聊天打开，"
                  "按渠道账号的加密标识去重）；扫码＝微信扫码次数（含扫码关注）；关注＝扫码关注次数；"
                  "网页打开＝带门店参数打开网页聊天的次数；入会＝在该门店入会的会员数；"
                  "关注率＝关注／扫码；入会率＝入会／访客（入会者不一定是这些访客）。"
                  "渠道筛选：访问的渠道与入会渠道。",
                  "Per store, in the range: visitors = distinct visitors who arrived through the store's QR code or "
                  "link (a WeChat scan, a follow through the code or the web chat opened with the store's link; "
                  "counted by a keyed hash of the channel address); scans = WeChat scans of the code (follows "
                  "included); follows = follows through the code; page opens = web chat opens with the store's "
                  "link; signups = members who joined through the store; follow rate = follows / scans; signup "
                  "rate = signups / visitors (those who joined need not be among the visitors). Channel filter: "
                  "the visit's channel and the join channel."),
}


def qr_funnel(s: Session, sc: Scope) -> list[dict[str, Any]]:
    """Per store with a visit or a signup in the range: visitors, scans, follows, page opens, signups, rates."""
    wechat = QrVisit.kind.in_(("scan", "follow"))
    vq = (select(QrVisit.store_id, func.count(func.distinct(QrVisit.visitor_key)),
                 func.sum(case((wechat, 1), else_=0)), func.sum(case((QrVisit.kind == "follow", 1), else_=0)),
                 func.sum(case((QrVisit.kind == "page_open", 1), else_=0)))
          .where(QrVisit.occurred_at >= sc.start, QrVisit.occurred_at < sc.end).group_by(QrVisit.store_id))
    sq = (select(Member.store_id, func.count())
          .where(Member.store_id.is_not(None), Member.created_at >= sc.start, Member.created_at < sc.end)
          .group_by(Member.store_id))
    if sc.store_id is not None:
        vq, sq = vq.where(QrVisit.store_id == sc.store_id), sq.where(Member.store_id == sc.store_id)
    if sc.channel:
        vq, sq = vq.where(QrVisit.channel == sc.channel), sq.where(Member.join_channel == sc.channel)
    visits = {sid: (int(v), int(sc_ or 0), int(f or 0), int(p or 0)) for sid, v, sc_, f, p in s.execute(vq)}
    signups = {sid: int(n) for sid, n in s.execute(sq)}
    ids = set(visits) | set(signups)
    if not ids:
        return []
    codes = dict(s.execute(select(Store.id, Store.code).where(Store.id.in_(ids))).all())
    out = []
    for sid in sorted(ids, key=lambda i: codes.get(i, "")):
        visitors, scans, follows, opens = visits.get(sid, (0, 0, 0, 0))
        joined = signups.get(sid, 0)
        out.append({"store": codes.get(sid, ""), "visitors": visitors, "scans": scans, "follows": follows,
                    "page_opens": opens, "signups": joined, "follow_rate": ratio(follows, scans),
                    "signup_rate": ratio(joined, visitors)})
    return out
