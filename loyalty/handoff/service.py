"""The handoff queue: ask for a person, wait, get taken by one agent, be transferred, end, rate.

Every change of state is a guarded ``UPDATE … WHERE status = …`` so that two
agents (or two processes) racing for the same conversation get exactly one
winner on SQLite and PostgreSQL alike; a partial unique index keeps one open
handoff per conversation. Times are aware UTC; ``now`` may be given for tests.
"""

from __future__ import annotations

import math
import statistics
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.common import now_or, parse_rating
from loyalty.config import Settings, settings
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.handoff.models import OPEN, REASONS, Agent, Handoff, HandoffNote
from loyalty.hours import ServiceHours, say_when
from loyalty.members.models import Member
from loyalty.tiers import service as tiers

LANGUAGES = ("zh", "en")
RATING_WINDOW = timedelta(hours=24)  # a score given later than this after the end is not taken
MAX_NOTE = 2000
_HISTORY = 20  # recent takes used to estimate the wait


@dataclass(frozen=True)
class Ticket:
    """What the shopper is told after asking for a person."""

    handoff_id: int
    status: str  # queued | active
    position: int  # 1: next to be taken; 0: already with an agent
    wait_minutes: int  # rough estimate, meaningful while open
    out_of_hours: bool
    opens_at: datetime | None  # next opening when out of hours
    priority: bool  # the member's tier has priority service
    created: bool  # False: the conversation was already waiting or with an agent


@dataclass(frozen=True)
class HandoffView:
    """A handoff as the console shows it."""

    id: int
    sender_id: str
    channel: str
    member_id: int | None
    reason: str
    priority: int
    language: str
    status: str
    agent_id: int | None
    agent_username: str | None
    agent_name: str | None
    out_of_hours: bool
    created_at: datetime
    taken_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    rating: int | None


@dataclass(frozen=True)
class NoteView:
    id: int
    kind: str
    text: str
    agent_username: str | None
    created_at: datetime


def view(h: Handoff) -> HandoffView:
    a = h.agent
    return HandoffView(
        h.id, h.sender_id, h.channel, h.member_id, h.reason, h.priority, h.language, h.status, h.agent_id,
        a.username if a else None, a.display_name if a else None, h.out_of_hours, h.created_at, h.taken_at,
        h.closed_at, h.closed_by, h.rating,
    )


@lru_cache(maxsize=8)
def _hours_for(raw: tuple[str, str, str, str]) -> ServiceHours:
    return ServiceHours.parse(*raw)


def service_hours(st: Settings | None = None) -> ServiceHours:
    """The service hours in force (parsed once per distinct setting)."""
    st = st or settings()
    return _hours_for((st.service_hours, st.service_days, st.service_closed_dates, st.service_tz))


def opening_text(ticket: Ticket, language: str, now: datetime | None = None) -> str:
    """When agents are back, as the shopper reads it ("明天 09:00" / "tomorrow at 09:00"); "" if open."""
    if ticket.opens_at is None:
        return ""
    return say_when(ticket.opens_at, now_or(now), language, service_hours().tz)


def _text(value: object, field: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidInput(f"{field} must be text of 1-{max_len} characters.", code=f"invalid_{field}")
    return value.strip()


def priority_of(s: Session, member_id: int | None) -> int:
    """Queue priority of a member: above 0 only for tiers with priority service, higher tiers first."""
    if member_id is None:
        return 0
    tier = s.execute(select(Member.tier).where(Member.id == member_id, Member.status == "active")).scalar()
    if tier is None:
        return 0
    t = settings().tier(tier)
    return tiers.rank(t.code) + 1 if t.priority_service else 0


def _position(s: Session, h: Handoff) -> int:
    """1 + how many queued handoffs come before ``h`` (higher priority, then earlier)."""
    ahead = s.execute(
        select(func.count()).select_from(Handoff).where(
            Handoff.status == "queued",
            Handoff.id != h.id,
            or_(
                Handoff.priority > h.priority,
                and_(
                    Handoff.priority == h.priority,
                    or_(Handoff.created_at < h.created_at,
                        and_(Handoff.created_at == h.created_at, Handoff.id < h.id)),
                ),
            ),
        )
    ).scalar_one()
    return int(ahead) + 1


def _minutes_per_place(s: Session, now: datetime) -> float:
    """Median wait of the latest takes in service hours (last 7 days), else the configured guess."""
    rows = s.execute(
        select(Handoff.created_at, Handoff.taken_at)
        .where(Handoff.taken_at.is_not(None), Handoff.out_of_hours.is_(False),
               Handoff.taken_at >= now - timedelta(days=7))
        .order_by(Handoff.taken_at.desc())
        .limit(_HISTORY)
    ).all()
    if len(rows) < 3:
        return float(settings().handoff_wait_minutes)
    median = statistics.median((t - c).total_seconds() / 60 for c, t in rows)
    return min(max(median, 0.5), 60.0)


def _ticket(s: Session, h: Handoff, now: datetime, created: bool) -> Ticket:
    hours = service_hours()
    opens = None if hours.is_open(now) else hours.next_opening(now)
    if h.status == "queued":
        pos = _position(s, h)
        wait = max(1, math.ceil(pos * _minutes_per_place(s, now)))
    else:
        pos, wait = 0, 0
    return Ticket(h.id, h.status, pos, wait, not hours.is_open(now), opens, h.priority > 0, created)


# Asked on every shopper message: built once, so SQLAlchemy keeps its compiled form.
_OPEN_OF = select(Handoff).where(Handoff.sender_id == bindparam("sid"), Handoff.status.in_(OPEN))


def _open(s: Session, sender_id: str) -> Handoff | None:
    return s.execute(_OPEN_OF, {"sid": sender_id}).scalar_one_or_none()


def request(
    s: Session,
    *,
    sender_id: str,
    channel: str,
    reason: str,
    member_id: int | None = None,
    language: str = "zh",
    now: datetime | None = None,
) -> Ticket:
    """Queue a conversation for a person; asking again while it waits returns the same ticket.

    Out of service hours the conversation is queued all the same (the shopper
    may leave a message) and the ticket says when agents are back.
    """
    sender_id = _text(sender_id, "sender_id", 128)
    channel = _text(channel, "channel", 20)
    if reason not in REASONS:
        raise InvalidInput(f"reason must be one of {', '.join(REASONS)}", code="invalid_reason")
    at = now_or(now)
    existing = _open(s, sender_id)
    if existing is not None:
        return _ticket(s, existing, at, created=False)
    if member_id is not None and s.execute(
        select(Member.id).where(Member.id == member_id, Member.status == "active")
    ).scalar() is None:
        member_id = None  # closed meanwhile: the shopper still gets a person
    h = Handoff(
        sender_id=sender_id, channel=channel, member_id=member_id, reason=reason,
        priority=priority_of(s, member_id), language=language if language in LANGUAGES else "zh",
        status="queued", out_of_hours=not service_hours().is_open(at), created_at=at,
    )
    s.add(h)
    # A concurrent twin trips the partial unique index here; loyalty.db.run retries
    # and the retry returns the twin's ticket.
    s.flush()
    return _ticket(s, h, at, created=True)


def ticket(s: Session, handoff_id: int, now: datetime | None = None) -> Ticket:
    """The current place in the queue of a handoff."""
    h = _load(s, handoff_id)
    return _ticket(s, h, now_or(now), created=False)


def _load(s: Session, handoff_id: int) -> Handoff:
    if not isinstance(handoff_id, int) or isinstance(handoff_id, bool):
        raise NotFound("No such handoff.", code="handoff_not_found")
    h = s.get(Handoff, handoff_id, populate_existing=True)
    if h is None:
        raise NotFound("No such handoff.", code="handoff_not_found")
    return h


def get(s: Session, handoff_id: int) -> HandoffView:
    """One handoff by id."""
    return view(_load(s, handoff_id))


def open_for(s: Session, sender_id: str) -> HandoffView | None:
    """The waiting or active handoff of a conversation, if any."""
    h = _open(s, sender_id)
    return view(h) if h else None


def queue(s: Session, limit: int = 200) -> list[HandoffView]:
    """Waiting conversations: priority tiers first, then the longest waiting."""
    q = (
        select(Handoff).where(Handoff.status == "queued")
        .order_by(Handoff.priority.desc(), Handoff.created_at, Handoff.id).limit(limit)
    )
    return [view(h) for h in s.execute(q).scalars()]


def active(s: Session, agent_id: int | None = None) -> list[HandoffView]:
    """Conversations with an agent (all, or one agent's), oldest first."""
    q = select(Handoff).where(Handoff.status == "active")
    if agent_id is not None:
        q = q.where(Handoff.agent_id == agent_id)
    return [view(h) for h in s.execute(q.order_by(Handoff.taken_at, Handoff.id)).scalars()]


def history(s: Session, sender_id: str, limit: int = 10) -> list[HandoffView]:
    """Earlier handoffs of the same conversation, newest first."""
    q = select(Handoff).where(Handoff.sender_id == sender_id).order_by(Handoff.created_at.desc()).limit(limit)
    return [view(h) for h in s.execute(q).scalars()]


def _agent(s: Session, agent_id: int) -> Agent:
    a = s.get(Agent, agent_id) if isinstance(agent_id, int) else None
    if a is None or not a.active:
        raise NotFound("No such agent.", code="agent_not_found")
    return a


def _note(s: Session, h: Handoff, agent: Agent | None, kind: str, text: str, at: datetime) -> None:
    s.add(HandoffNote(handoff_id=h.id, agent_id=agent.id if agent else None, kind=kind, text=text, created_at=at))


def _guarded(s: Session, h: Handoff, where: list, values: dict) -> bool:
    """Apply ``values`` only if the row still matches ``where``; True when this call changed it."""
    res = s.execute(
        update(Handoff).where(Handoff.id == h.id, *where).values(**values)
        .execution_options(synchronize_session=False)
    )
    s.refresh(h)
    return res.rowcount == 1


def take(s: Session, handoff_id: int, agent_id: int, now: datetime | None = None) -> HandoffView:
    """An agent takes a waiting conversation; of several agents racing, exactly one wins."""
    at = now_or(now)
    agent = _agent(s, agent_id)
    h = _load(s, handoff_id)
    if not _guarded(s, h, [Handoff.status == "queued"], {"status": "active", "agent_id": agent.id, "taken_at": at}):
        if h.status == "active":
            raise Refused("Another agent took this conversation.", code="already_taken",
                          agent=h.agent.display_name if h.agent else None)
        raise Refused("This conversation is no longer waiting.", code="not_waiting", status=h.status)
    audit(s, agent.username, "handoff_take", h.member_id, handoff=h.id)
    return view(h)


def _may_act(agent: Agent, h: Handoff) -> None:
    if h.status != "active":
        raise Refused("This conversation is not with an agent.", code="not_active", status=h.status)
    if h.agent_id != agent.id and agent.role != "supervisor":
        raise Refused("This conversation is with another agent.", code="not_yours")


def check_assignee(s: Session, handoff_id: int, agent_id: int) -> HandoffView:
    """The handoff, if ``agent_id`` may act on it now (its agent, or a supervisor)."""
    agent = _agent(s, agent_id)
    h = _load(s, handoff_id)
    _may_act(agent, h)
    return view(h)


def transfer(
    s: Session, handoff_id: int, *, agent_id: int, to_agent_id: int, now: datetime | None = None
) -> HandoffView:
    """Give an active conversation to another agent (its agent or a supervisor may)."""
    at = now_or(now)
    agent = _agent(s, agent_id)
    target = _agent(s, to_agent_id)
    h = _load(s, handoff_id)
    _may_act(agent, h)
    if target.id == h.agent_id:
        raise Refused("The conversation is already with this agent.", code="same_agent")
    if not _guarded(s, h, [Handoff.status == "active", Handoff.agent_id == h.agent_id], {"agent_id": target.id}):
        raise Refused("The conversation changed meanwhile; look again.", code="changed")
    _note(s, h, agent, "system", f"transfer → {target.username}", at)
    audit(s, agent.username, "handoff_transfer", h.member_id, handoff=h.id, to=target.username)
    return view(h)


def close(s: Session, handoff_id: int, *, agent_id: int, now: datetime | None = None) -> HandoffView:
    """End an active conversation and hand it back to the bot."""
    at = now_or(now)
    agent = _agent(s, agent_id)
    h = _load(s, handoff_id)
    _may_act(agent, h)
    if not _guarded(s, h, [Handoff.status == "active", Handoff.agent_id == h.agent_id],
                    {"status": "closed", "closed_at": at, "closed_by": agent.username}):
        raise Refused("The conversation changed meanwhile; look again.", code="changed")
    audit(s, agent.username, "handoff_close", h.member_id, handoff=h.id)
    return view(h)


def cancel(s: Session, handoff_id: int, *, by: str = "shopper", now: datetime | None = None) -> bool:
    """The shopper goes back to the bot while waiting; False if an agent took it first (or it ended)."""
    at = now_or(now)
    h = _load(s, handoff_id)
    return _guarded(s, h, [Handoff.status == "queued"],
                    {"status": "cancelled", "closed_at": at, "closed_by": by[:32]})


def end_for_restart(s: Session, sender_id: str, now: datetime | None = None) -> HandoffView | None:
    """The conversation was restarted (/restart): whatever was open ends; returns it."""
    at = now_or(now)
    h = _open(s, sender_id)
    if h is None:
        return None
    status = "cancelled" if h.status == "queued" else "closed"
    if not _guarded(s, h, [Handoff.status == h.status], {"status": status, "closed_at": at, "closed_by": "restart"}):
        return None
    return view(h)


def rate(s: Session, sender_id: str, score: object, now: datetime | None = None) -> HandoffView | None:
    """Record the shopper's 1-5 score of their latest ended handoff (within a day, once)."""
    value = parse_rating(score)
    at = now_or(now)
    h = s.execute(
        select(Handoff).where(Handoff.sender_id == sender_id, Handoff.status == "closed",
                              Handoff.closed_at >= at - RATING_WINDOW)
        .order_by(Handoff.closed_at.desc(), Handoff.id.desc()).limit(1)
    ).scalar_one_or_none()
    if h is None or h.rating is not None:
        return None
    if not _guarded(s, h, [Handoff.rating.is_(None)], {"rating": value, "rated_at": at}):
        return None
    return view(h)


def _clean_note(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInput("A note is text.", code="invalid_note")
    # Keep line breaks and tabs; drop other control characters (and NUL, which PostgreSQL refuses).
    cleaned = "".join(ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")).strip()
    if not cleaned or len(cleaned) > MAX_NOTE:
        raise InvalidInput(f"A note has 1-{MAX_NOTE} characters.", code="invalid_note")
    return cleaned


def add_note(
    s: Session, handoff_id: int, *, agent_id: int, text: str, kind: str = "note", now: datetime | None = None
) -> NoteView:
    """An internal note on a conversation (never sent to the shopper)."""
    if kind not in ("note", "system"):
        raise InvalidInput("kind is note or system.", code="invalid_note")
    agent = _agent(s, agent_id)
    h = _load(s, handoff_id)
    body = _clean_note(text)
    n = HandoffNote(handoff_id=h.id, agent_id=agent.id, kind=kind, text=body, created_at=now_or(now))
    s.add(n)
    s.flush()
    return NoteView(n.id, n.kind, n.text, agent.username, n.created_at)


def notes(s: Session, handoff_id: int) -> list[NoteView]:
    """Notes of a conversation, oldest first."""
    q = select(HandoffNote).where(HandoffNote.handoff_id == handoff_id).order_by(HandoffNote.id)
    return [NoteView(n.id, n.kind, n.text, n.agent.username if n.agent else None, n.created_at)
            for n in s.execute(q).scalars()]
