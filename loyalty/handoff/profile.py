"""The member as the agent sees them beside the conversation, in one read.

Tier and the way to the next, points and what expires, usable coupons,
recent orders, the segment when the segmentation job has run, a few
recommendations, and the coupons the agent may give. Phone numbers stay masked.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.coupons import service as coupons
from loyalty.errors import NotFound
from loyalty.handoff.goodwill import grantable
from loyalty.members.models import MemberSegment
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.points import service as points
from loyalty.recommender import service as recommender
from loyalty.tiers import service as tiers

log = logging.getLogger(__name__)
RECOMMENDATIONS = 5


def _plain(value: Any) -> Any:
    """Dataclasses, dates and tuples as JSON-ready values."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return _plain(asdict(value))
    return value


def _recommendations(s: Session, member_id: int) -> tuple[str, list[dict[str, Any]]]:
    """The recommender's picks for the member (each with its zh/en reason), else best sellers."""
    try:
        reco = importlib.import_module("loyalty.recommender.service")
        picks = reco.recommend(s, member_id, k=RECOMMENDATIONS)
        return "recommender", _plain(list(picks))
    except (ImportError, AttributeError):
        pass
    except Exception:  # the profile matters more than its recommendations
        log.exception("recommendations failed for the console")
    return "best_sellers", _plain(recommender.best_sellers(s, RECOMMENDATIONS))


def member_profile(s: Session, member_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Everything the console shows about a member, JSON-ready."""
    at = now_or(now)
    card = membership.card(s, member_id)
    status = tiers.status(s, member_id, at)
    summary = points.summary(s, member_id, recent=5, now=at)
    seg = s.get(MemberSegment, member_id)
    source, recos = _recommendations(s, member_id)
    return {
        "card": _plain(card),
        "tier": {
            "code": status.tier.code, "name_zh": status.tier.name_zh, "name_en": status.tier.name_en,
            "priority_service": status.tier.priority_service, "growth": status.growth,
            "next_zh": status.next_tier.name_zh if status.next_tier else None,
            "next_en": status.next_tier.name_en if status.next_tier else None,
            "to_next": status.to_next,
        },
        "points": _plain(summary),
        "coupons": _plain(coupons.member_coupons(s, member_id, now=at)),
        "orders": _plain(orders.recent_orders(s, member_id, 5)),
        "segment": None if seg is None else {
            "segment": seg.segment, "lifecycle": seg.lifecycle, "tags": list(seg.tags or []),
            "rfm": [seg.recency, seg.frequency, seg.monetary], "as_of": seg.as_of.isoformat(),
        },
        "recommendations": {"source": source, "items": recos},
        "grantable": [{"source": g.source, **_plain(g.campaign)} for g in grantable(s, member_id, at)],
    }


def member_for(s: Session, member_id: int | None, channel: str, sender_id: str) -> int | None:
    """The member behind a conversation: the one recorded at the request, or found by channel address."""
    if member_id is not None:
        try:
            membership.card(s, member_id)
            return member_id
        except NotFound:
            return None
    found = membership.by_identity(s, channel, sender_id)
    return found.id if found else None


__all__ = ["member_for", "member_profile"]
