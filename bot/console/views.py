"""JSON shapes the console's page reads: queue entries, a conversation in full."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import metrics
from bot.wechat.delivery import mask
from loyalty import db
from loyalty.errors import NotFound
from loyalty.handoff import service
from loyalty.handoff.auth import AgentView
from loyalty.handoff.profile import member_for, member_profile
from loyalty.handoff.service import HandoffView
from loyalty.membership import service as membership


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def sender_label(h: HandoffView) -> str:
    """A conversation's address shortened for screens: enough to tell apart, not to identify."""
    return mask(h.sender_id)


def entry(h: HandoffView, card: membership.MemberCard | None) -> dict[str, Any]:
    """One line of the queue or of the active list."""
    return {
        "id": h.id, "sender": sender_label(h), "channel": h.channel, "reason": h.reason,
        "priority": h.priority, "language": h.language, "status": h.status, "out_of_hours": h.out_of_hours,
        "created_at": _iso(h.created_at), "taken_at": _iso(h.taken_at), "closed_at": _iso(h.closed_at),
        "closed_by": h.closed_by, "rating": h.rating,
        "agent": None if h.agent_id is None else {"id": h.agent_id, "username": h.agent_username,
                                                  "name": h.agent_name},
        "member": None if card is None else {
            "id": card.id, "name": card.name, "phone": card.phone_masked, "tier": card.tier,
            "tier_zh": card.tier_name_zh, "tier_en": card.tier_name_en, "points": card.points,
        },
    }


def _card(s: Session, member_id: int | None) -> membership.MemberCard | None:
    if member_id is None:
        return None
    try:
        return membership.card(s, member_id)
    except NotFound:
        return None


def _snapshot(s: Session) -> dict[str, Any]:
    queued = service.queue(s)
    active = service.active(s)
    return {
        "type": "queue",
        "queue": [entry(h, _card(s, h.member_id)) for h in queued],
        "active": [entry(h, _card(s, h.member_id)) for h in active],
    }


async def snapshot() -> dict[str, Any]:
    """The waiting queue (priority tiers first, then longest waiting) and the conversations with agents.

    Also refreshes the handoff queue gauges (the console polls this every few seconds).
    """
    snap = await db.arun(_snapshot, readonly=True)
    waiting = [h["created_at"] for h in snap["queue"] if h.get("created_at")]
    oldest = (db.utcnow() - min(datetime.fromisoformat(t) for t in waiting)).total_seconds() if waiting else 0.0
    metrics.handoff_queue(len(snap["queue"]), oldest)
    return snap


def may_view(h: HandoffView, who: AgentView) -> bool:
    """Waiting conversations are open to every agent; one with an agent to that agent and supervisors."""
    return who.supervisor or h.status == "queued" or h.agent_id == who.id


def _details(s: Session, handoff_id: int) -> dict[str, Any]:
    h = service.get(s, handoff_id)
    member_id = member_for(s, h.member_id, h.channel, h.sender_id)
    return {
        "handoff": entry(h, _card(s, member_id)),
        "sender_id": h.sender_id,
        "profile": member_profile(s, member_id) if member_id is not None else None,
        "notes": [{"id": n.id, "kind": n.kind, "text": n.text, "agent": n.agent_username,
                   "at": _iso(n.created_at)} for n in service.notes(s, h.id)],
        "earlier": [entry(x, None) for x in service.history(s, h.sender_id) if x.id != h.id],
        "_view": h,
    }


async def details(handoff_id: int) -> dict[str, Any]:
    """A handoff with the member's profile, notes and earlier handoffs (``_view``: the HandoffView)."""
    return await db.arun(_details, handoff_id, readonly=True)
