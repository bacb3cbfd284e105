"""What an agent may give during a handoff: a coupon, a points adjustment; both audited.

An agent gives coupons of goodwill campaigns, or of public campaigns the
member could claim now. Adjustments above ``settings().adjust_limit`` points
(either way) need a supervisor. Both act only on a conversation the agent
holds (a supervisor may act on any active one) and are noted on the handoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.config import settings
from loyalty.coupons import service as coupons
from loyalty.coupons.models import CouponCampaign
from loyalty.coupons.service import CampaignView
from loyalty.errors import InvalidInput, Refused
from loyalty.handoff import service
from loyalty.handoff.models import Agent, Handoff, HandoffNote
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry


@dataclass(frozen=True)
class Grantable:
    """A campaign the agent may give this member, and why it is offered."""

    campaign: CampaignView
    source: str  # goodwill | claimable


def grantable(s: Session, member_id: int, now: datetime | None = None) -> list[Grantable]:
    """Goodwill campaigns still valid, then public campaigns the member may claim now."""
    at = now_or(now)
    out: list[Grantable] = []
    goodwill = s.execute(
        select(CouponCampaign)
        .where(CouponCampaign.audience == "goodwill", CouponCampaign.active.is_(True))
        .order_by(CouponCampaign.id)
    ).scalars()
    for c in goodwill:
        if c.valid_until is not None and c.valid_until <= at:
            continue
        if c.total_stock is not None and c.issued >= c.total_stock:
            continue
        out.append(Grantable(coupons.view(c), "goodwill"))
    out.extend(Grantable(o.campaign, "claimable") for o in coupons.offers(s, member_id, at) if o.claimable)
    return out


def _context(s: Session, handoff_id: int, agent_id: int) -> tuple[Handoff, Agent]:
    service.check_assignee(s, handoff_id, agent_id)
    h = s.get(Handoff, handoff_id)
    a = s.get(Agent, agent_id)
    assert h is not None and a is not None
    if h.member_id is None:
        raise Refused("This shopper is not a member.", code="not_a_member")
    return h, a


def grant_coupon(
    s: Session, handoff_id: int, *, agent_id: int, campaign: str, key: str, now: datetime | None = None
) -> coupons.Claim:
    """Give the member of the conversation one coupon, once per ``key`` (a double click gives one)."""
    at = now_or(now)
    h, a = _context(s, handoff_id, agent_id)
    assert h.member_id is not None
    code = campaign.strip().upper() if isinstance(campaign, str) else ""
    allowed = {g.campaign.code for g in grantable(s, h.member_id, at)}
    if code not in allowed:
        raise Refused("This coupon cannot be given to this member now.", code="not_grantable")
    if not isinstance(key, str) or not key.strip() or len(key) > 64:
        raise InvalidInput("A request key of 1-64 characters.", code="invalid_key")
    claim = coupons.grant(s, h.member_id, code, key=f"handoff:{h.id}:{key}", actor=a.username, now=at)
    if not claim.replayed:
        s.add(HandoffNote(handoff_id=h.id, agent_id=a.id, kind="system",
                          text=f"coupon {code} → {claim.coupon.code}", created_at=at))
    return claim


def adjust_points(
    s: Session,
    handoff_id: int,
    *,
    agent_id: int,
    delta: int,
    reason: str,
    key: str,
    now: datetime | None = None,
) -> points.Movement:
    """Add or take points with a reason; above the limit only a supervisor may. Once per ``key``."""
    at = now_or(now)
    h, a = _context(s, handoff_id, agent_id)
    assert h.member_id is not None
    if not isinstance(delta, int) or isinstance(delta, bool):
        raise InvalidInput("Points are a whole number.", code="invalid_points")
    limit = settings().adjust_limit
    if abs(delta) > limit and a.role != "supervisor":
        raise Refused(f"Adjustments above {limit} points need a supervisor.", code="supervisor_only", limit=limit)
    if not isinstance(key, str) or not key.strip() or len(key) > 64:
        raise InvalidInput("A request key of 1-64 characters.", code="invalid_key")
    ledger_key = f"handoff:{h.id}:{key}"
    # points.adjust replays a known key silently; look first so a replay adds no second note.
    replay = s.execute(
        select(LedgerEntry.id).where(LedgerEntry.idem_key == f"adjust:{h.member_id}:{ledger_key}")
    ).first()
    mv = points.adjust(s, h.member_id, delta, reason=reason, actor=a.username, key=ledger_key, now=at)
    if replay is None:
        s.add(HandoffNote(handoff_id=h.id, agent_id=a.id, kind="system",
                          text=f"points {delta:+d} ({reason.strip()[:100]})", created_at=at))
    return mv
