"""The outreach engine's operations: plan what is due, claim it, check the rules, record every outcome.

Each send is a row of ``outreach_sends`` before it is a message. Planning
inserts rows under a unique idempotency key (member, journey, step,
occasion); delivery claims due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), re-checks the rules under the member's row lock, marks the row
``sending`` and commits before calling the channel's API, then records the
outcome. A scheduler killed during the call leaves ``sending`` rows that are
marked ``in_doubt``, never sent again: at most once, and visibly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.common import now_or
from loyalty.config import settings as core_settings
from loyalty.db import add_first, insert_new
from loyalty.errors import InvalidInput, NotFound
from loyalty.members.models import ChannelIdentity, Member, MemberSegment
from loyalty.members.service import identity_owner
from loyalty.outreach import copy, rules
from loyalty.outreach.journeys import JOURNEYS, MARKETING, Candidate, Step, broadcast_step
from loyalty.outreach.models import Broadcast, InboxMessage, JourneySwitch, OutreachSend, SubscriptionCredit
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings

# Not finished yet: a scheduler will still send (or skip) these.
PLANNED = ("due", "claimed", "ready", "sending")
# Count against the frequency cap: sent, about to be, or perhaps sent.
SPENT = ("ready", "sending", "sent", "in_doubt")


def paused(s: Session, journey: str) -> bool:
    return bool(s.execute(select(JourneySwitch.paused).where(JourneySwitch.journey == journey)).scalar())


def set_paused(s: Session, journey: str, value: bool, *, actor: str, now: datetime | None = None) -> None:
    """Pause or resume a journey or broadcast (``broadcast:<code>``); due sends wait while paused."""
    if journey not in JOURNEYS and not journey.startswith("broadcast:"):
        raise NotFound(f"No journey {journey!r}.", code="journey_not_found")
    row = s.get(JourneySwitch, journey)
    if row is None:
        row = JourneySwitch(journey=journey, actor=actor)
        s.add(row)
    row.paused, row.actor, row.changed_at = value, actor, now_or(now)
    audit(s, actor, "journey_paused" if value else "journey_resumed", None)


def idem_key(member_id: int, journey: str, step: str, occasion: str) -> str:
    return f"{member_id}:{journey}:{step}:{occasion}"


@dataclass(frozen=True)
class Plan:
    journey: str
    candidates: int
    new: int


def _eligible(s: Session, ids: set[int]) -> dict[int, tuple[str, bool]]:
    """status and marketing consent of each member, in chunks."""
    out: dict[int, tuple[str, bool]] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 900):
        q = select(Member.id, Member.status, Member.marketing_opt_in).where(Member.id.in_(ordered[i:i + 900]))
        out.update({mid: (st, bool(ok)) for mid, st, ok in s.execute(q)})
    return out


def _rows(s: Session, journey: str, step_of: dict[str, Step], found: list[Candidate], now: datetime,
          cfg: OutreachSettings) -> list[dict[str, Any]]:
    due = rules.hold(now, cfg.quiet_start, cfg.quiet_end)
    members = _eligible(s, {c.member_id for c in found})
    rows = []
    for c in found:
        step = step_of[c.step]
        status, consent = members.get(c.member_id, ("closed", False))
        row = dict(idem_key=idem_key(c.member_id, journey, c.step, c.occasion), member_id=c.member_id,
                   journey=journey, step=c.step, occasion=c.occasion, kind=step.kind, facts=c.facts,
                   attempts=0, planned_at=now, due_at=due, reason=None, done_at=None)
        # Eligibility first, the arm second: both arms then hold the same kind of member.
        control = rules.in_control(c.member_id, journey, cfg.holdout_percent)
        row["arm"] = "control" if control else "treatment"
        if status != "active":
            row.update(status="skipped", reason="closed", done_at=now)
        elif step.kind == MARKETING and not consent:
            row.update(status="skipped", reason="opted_out", done_at=now)
        elif control:
            row.update(status="control", done_at=due)
        else:
            row["status"] = "due"
        rows.append(row)
    return rows


def plan_journey(s: Session, journey: str, now: datetime | None = None, cfg: OutreachSettings | None = None) -> Plan:
    """Record every send of ``journey`` due at ``now`` (nothing when paused); safe to repeat."""
    at, cfg = now_or(now), cfg or outreach_settings()
    j = JOURNEYS[journey]
    if paused(s, journey):
        return Plan(journey, 0, 0)
    found = j.find(s, at)
    # A send planned before (by anyone) keeps its row: the idempotency key.
    new = insert_new(s, OutreachSend, _rows(s, journey, j.steps, found, at, cfg), ["idem_key"])
    return Plan(journey, len(found), new)


def plan_all(s: Session, now: datetime | None = None, cfg: OutreachSettings | None = None) -> list[Plan]:
    """Plan every configured journey and every broadcast whose time has come."""
    cfg = cfg or outreach_settings()
    out = [plan_journey(s, name, now, cfg) for name in cfg.journeys]
    for code in s.execute(select(Broadcast.code).where(Broadcast.planned_at.is_(None),
                                                          Broadcast.send_at <= now_or(now))).scalars():
        out.append(plan_broadcast(s, code, now, cfg))
    return out


# ---------------------------------------------------------------- broadcasts

AUDIENCE_KEYS = ("segment", "tier", "lifecycle", "store_id", "tag")


def audience_query(audience: dict[str, Any]) -> Any:
    """Active members matching every given criterion (segment, tier, lifecycle stage, store, tag)."""
    unknown = set(audience) - set(AUDIENCE_KEYS)
    if unknown:
        raise InvalidInput(f"Unknown audience criteria: {', '.join(sorted(unknown))}.", code="invalid_audience")
    q = select(Member.id).where(Member.status == "active")
    if any(k in audience for k in ("segment", "lifecycle", "tag")):
        q = q.join(MemberSegment, MemberSegment.member_id == Member.id)
    if "segment" in audience:
        q = q.where(MemberSegment.segment == audience["segment"])
    if "lifecycle" in audience:
        q = q.where(MemberSegment.lifecycle == audience["lifecycle"])
    if "tier" in audience:
        q = q.where(Member.tier == audience["tier"])
    if "store_id" in audience:
        q = q.where(Member.store_id == int(audience["store_id"]))
    return q.order_by(Member.id)


def _audience(s: Session, audience: dict[str, Any]) -> list[int]:
    ids = list(s.execute(audience_query(audience)).scalars())
    if "tag" in audience:  # tags are a JSON list: filtered here, the same on SQLite and PostgreSQL
        tagged = {mid for mid, tags in s.execute(select(MemberSegment.member_id, MemberSegment.tags))
                  if audience["tag"] in (tags or [])}
        ids = [m for m in ids if m in tagged]
    return ids


def create_broadcast(s: Session, code: str, audience: dict[str, Any], text_zh: str, text_en: str,
                     send_at: datetime, *, actor: str) -> int:
    """Schedule a one-off message to an audience at ``send_at``."""
    if not code or len(code) > 40:
        raise InvalidInput("A broadcast needs a code (≤40 characters) and both texts.", code="invalid_broadcast")
    text_zh, text_en = copy.check(text_zh, text_en, copy.MEMBER_FIELDS)
    _audience(s, audience)  # refuse unknown criteria now, not at send time
    b = Broadcast(code=code, audience=audience, text_zh=text_zh, text_en=text_en, send_at=send_at)
    s.add(b)
    s.flush()
    audit(s, actor, "broadcast_created", None)
    return int(b.id)


def _broadcast(s: Session, code: str) -> Broadcast:
    b = s.execute(select(Broadcast).where(Broadcast.code == code)).scalar_one_or_none()
    if b is None:
        raise NotFound(f"No broadcast {code!r}.", code="broadcast_not_found")
    return b


def plan_broadcast(s: Session, code: str, now: datetime | None = None, cfg: OutreachSettings | None = None) -> Plan:
    """Record the sends of a broadcast (at most once per member, whoever runs it)."""
    at, cfg = now_or(now), cfg or outreach_settings()
    b = _broadcast(s, code)
    name = f"broadcast:{code}"
    if paused(s, name):
        return Plan(name, 0, 0)
    found = [Candidate(mid, "main", code) for mid in _audience(s, b.audience)]
    # A send planned before (by anyone) keeps its row: the idempotency key.
    new = insert_new(s, OutreachSend, _rows(s, name, {"main": step_for(s, name)}, found, at, cfg), ["idem_key"])
    b.planned_at = b.planned_at or at
    return Plan(name, len(found), new)


def step_for(s: Session, journey: str, step: str = "main") -> Step:
    if journey.startswith("broadcast:"):
        b = _broadcast(s, journey.split(":", 1)[1])
        return broadcast_step(b.text_zh, b.text_en)
    return copy.step(s, journey, step)


# ---------------------------------------------------------------- credits


def grant_credit(s: Session, member_id: int, template_id: str, now: datetime | None = None, *,
                 key: str | None = None) -> int:
    """Record one one-time subscription credit the member granted; with ``key``, at most one per key."""
    return _grant(s, member_id, template_id, now_or(now), key)[0]


def _grant(s: Session, member_id: int, template_id: str, at: datetime, key: str | None) -> tuple[int, bool]:
    """(the credit's id, whether it is new): a key granted before returns the earlier credit."""
    by_key = select(SubscriptionCredit.id).where(SubscriptionCredit.grant_key == key)
    if key is not None and (found := s.execute(by_key).scalar()) is not None:
        return int(found), False
    c = SubscriptionCredit(member_id=member_id, template_id=template_id, granted_at=at, grant_key=key)
    if not add_first(s, c):  # a replay racing this one in another process: its row wins, ours goes
        return int(s.execute(by_key).scalar_one()), False
    return int(c.id), True


TEMPLATE_ID_MAX = 64


def record_subscription(s: Session, openid: str, accepted: list[str], *, key: str,
                        now: datetime | None = None) -> int:
    """The shopper behind ``openid`` accepted these templates in WeChat's subscription pop-up: one credit each.

    ``key`` is the callback's identity: a retried callback grants nothing more. Returns the credits
    granted now (none for a shopper who is not a member: there is nobody to send to)."""
    member_id = identity_owner(s, "wechat", openid)
    member = s.get(Member, member_id) if member_id is not None else None
    if member is None or member.status != "active":
        return 0
    at = now_or(now)
    templates = dict.fromkeys(t for t in accepted if t and len(t) <= TEMPLATE_ID_MAX)  # once each, in order
    return sum(_grant(s, member.id, t, at, f"{key}:{t}"[:200])[1] for t in templates)


# A credit WeChat would still honour: neither spent nor refused since.
_OPEN = and_(SubscriptionCredit.spent_at.is_(None), SubscriptionCredit.revoked_at.is_(None))


def revoke_subscription(s: Session, openid: str, refused: list[str], now: datetime | None = None) -> int:
    """The shopper behind ``openid`` refused these templates in WeChat's settings at ``now``.

    Their open credits granted until then are revoked (a credit granted later is a newer consent).
    Returns how many (none for a shopper who is not a member). Replays revoke nothing more."""
    member_id = identity_owner(s, "wechat", openid)
    templates = [t for t in dict.fromkeys(refused) if t and len(t) <= TEMPLATE_ID_MAX]
    if member_id is None or not templates:
        return 0
    at = now_or(now)
    # WeChat's times have whole seconds: a consent stamped in the same second is not "after" the refusal.
    res = s.execute(update(SubscriptionCredit).where(
        SubscriptionCredit.member_id == member_id, SubscriptionCredit.template_id.in_(templates), _OPEN,
        SubscriptionCredit.granted_at < at + timedelta(seconds=1)).values(revoked_at=at))
    return int(res.rowcount or 0)


# How long after a send left in doubt WeChat's report of it may come and still settle it.
SENT_REPORT_WINDOW = timedelta(hours=1)


def subscription_sent(s: Session, openid: str, results: list[tuple[str, str]], now: datetime | None = None) -> int:
    """WeChat reports subscription messages to ``openid`` sent ("success") or not ("failed:…") at ``now``.

    Such a report settles a send the scheduler left ``in_doubt`` (it died during the API call): the
    member's latest one on that template within :data:`SENT_REPORT_WINDOW` before the report becomes
    ``sent``, or ``failed`` with WeChat's status. A "user block" also revokes the member's open credits
    for the template, as a 43101 answer does. Sends already settled are left alone, so a replayed
    report changes nothing. Returns how many sends it settled."""
    member_id = identity_owner(s, "wechat", openid)
    if member_id is None:
        return 0
    at = now_or(now)
    settled = 0
    for template, status in results:
        ok = status == "success"
        send_id = s.execute(
            select(OutreachSend.id).join(SubscriptionCredit, SubscriptionCredit.send_id == OutreachSend.id)
            .where(OutreachSend.member_id == member_id, OutreachSend.status == "in_doubt",
                   SubscriptionCredit.template_id == template,
                   OutreachSend.done_at >= at - SENT_REPORT_WINDOW, OutreachSend.done_at <= at + timedelta(minutes=1))
            .order_by(OutreachSend.done_at.desc(), OutreachSend.id.desc()).limit(1)).scalar()
        if send_id is not None:
            values: dict[str, Any] = {"status": "sent"} if ok else {"status": "failed", "errcode": status[:40],
                                                                      "reason": "api_error"}
            res = s.execute(update(OutreachSend).where(OutreachSend.id == send_id, OutreachSend.status == "in_doubt")
                            .values(**values))
            settled += int(res.rowcount or 0)
        if "user block" in status:
            s.execute(update(SubscriptionCredit).where(
                SubscriptionCredit.member_id == member_id, SubscriptionCredit.template_id == template, _OPEN,
                SubscriptionCredit.granted_at < at + timedelta(seconds=1)).values(revoked_at=at))
    return settled


def refused_send(s: Session, send_id: int, now: datetime) -> None:
    """WeChat refused a subscription send because the member refuses the template (43101).

    The send's credit and every other open credit of the member for that template are revoked:
    WeChat would refuse them too, so keeping them would only fail again."""
    row = s.execute(select(SubscriptionCredit.member_id, SubscriptionCredit.template_id)
                    .where(SubscriptionCredit.send_id == send_id)).first()
    if row is None:
        return
    s.execute(update(SubscriptionCredit).where(SubscriptionCredit.send_id == send_id).values(revoked_at=now))
    s.execute(update(SubscriptionCredit).where(
        SubscriptionCredit.member_id == row.member_id, SubscriptionCredit.template_id == row.template_id, _OPEN)
        .values(revoked_at=now))


def open_credits(s: Session, member_id: int, template_id: str) -> int:
    return int(s.execute(select(func.count()).where(
        SubscriptionCredit.member_id == member_id, SubscriptionCredit.template_id == template_id,
        _OPEN)).scalar() or 0)


def spend_credit(s: Session, member_id: int, template_id: str, send_id: int, now: datetime) -> bool:
    """Spend exactly one open credit for ``send_id`` (guarded update); False when there is none."""
    for cid in s.execute(select(SubscriptionCredit.id).where(
            SubscriptionCredit.member_id == member_id, SubscriptionCredit.template_id == template_id,
            _OPEN).order_by(SubscriptionCredit.id).limit(3)).scalars():
        res = s.execute(update(SubscriptionCredit).where(SubscriptionCredit.id == cid,
                                                         _OPEN)
                        .values(spent_at=now, send_id=send_id))
        if res.rowcount == 1:
            return True
    return False


def open_credit_ids(s: Session, member_ids: list[int], template_id: str) -> dict[int, list[int]]:
    """The open credits of each member for one template, oldest first, locked until the transaction ends
    (a refusal recorded meanwhile waits), so :func:`spend_credits` finds them still open."""
    out: dict[int, list[int]] = {}
    for i in range(0, len(member_ids), 900):
        for cid, mid in s.execute(select(SubscriptionCredit.id, SubscriptionCredit.member_id).where(
                SubscriptionCredit.member_id.in_(member_ids[i:i + 900]), SubscriptionCredit.template_id == template_id,
                _OPEN).order_by(SubscriptionCredit.id).with_for_update()):
            out.setdefault(mid, []).append(cid)
    return out


def spend_credits(s: Session, spends: Mapping[int, int], now: datetime) -> None:
    """Spend each credit (id -> the send it pays for), locked by :func:`open_credit_ids` in this transaction,
    in one guarded update per few hundred."""
    ids = sorted(spends)
    for i in range(0, len(ids), 300):
        chunk = ids[i:i + 300]
        res = s.execute(update(SubscriptionCredit).where(SubscriptionCredit.id.in_(chunk), _OPEN)
                        .values(spent_at=now, send_id=case({c: spends[c] for c in chunk}, value=SubscriptionCredit.id))
                        .execution_options(synchronize_session=False))
        if res.rowcount != len(chunk):  # cannot happen under the locks; never send on a credit not spent
            raise RuntimeError("subscription credits changed under their locks")


def restore_credit(s: Session, send_id: int) -> None:
    """WeChat refused the send: the credit was not used."""
    s.execute(update(SubscriptionCredit).where(SubscriptionCredit.send_id == send_id)
              .values(spent_at=None, send_id=None))


# ---------------------------------------------------------------- claiming


def claim(s: Session, worker: str, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Take up to ``limit`` due sends for ``worker``; other schedulers skip the locked rows."""
    at = now_or(now)
    q = (select(OutreachSend.id).where(OutreachSend.status == "due", OutreachSend.due_at <= at)
         .order_by(OutreachSend.due_at, OutreachSend.id).limit(limit))
    if s.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        q = q.with_for_update(skip_locked=True)
    ids = list(s.execute(q).scalars())
    if ids:
        s.execute(update(OutreachSend).where(OutreachSend.id.in_(ids), OutreachSend.status == "due")
                  .values(status="claimed", claimed_by=worker, claimed_at=at))
    return ids


def recover(s: Session, worker: str | None = None, now: datetime | None = None,
            cfg: OutreachSettings | None = None) -> tuple[int, int]:
    """After a crash: unstarted claims go back to due; sends caught mid-call become in_doubt (never resent).

    ``worker``: this scheduler's own rows, whatever their age; otherwise those older than the lease.
    """
    at, cfg = now_or(now), cfg or outreach_settings()
    mine = (OutreachSend.claimed_by == worker) if worker else (
        OutreachSend.claimed_at < at - timedelta(seconds=cfg.lease_seconds))
    back = s.execute(update(OutreachSend).where(OutreachSend.status == "claimed", mine)
                     .values(status="due", claimed_by=None, claimed_at=None)).rowcount
    # Decided but never handed to the API: due again, their credits given back.
    ready = list(s.execute(select(OutreachSend.id).where(OutreachSend.status == "ready", mine)).scalars())
    for send_id in ready:
        restore_credit(s, send_id)
    if ready:
        s.execute(update(OutreachSend).where(OutreachSend.id.in_(ready), OutreachSend.status == "ready")
                  .values(status="due", claimed_by=None, claimed_at=None, done_at=None, channel=None, route=None))
    doubt = s.execute(update(OutreachSend).where(OutreachSend.status == "sending", mine)
                      .values(status="in_doubt", reason="crashed_during_send", done_at=at)).rowcount
    return int(back or 0) + len(ready), int(doubt or 0)


# ---------------------------------------------------------------- address book


@dataclass(frozen=True)
class Address:
    channel: str  # wechat | webchat | sms
    to: str  # openid, visitor id, phone number (never logged)


def addresses(s: Session, member: Member) -> list[Address]:
    """Where the member can be reached, in order of preference: WeChat, web chat, SMS (with SMS consent)."""
    found = {ch: ext for ch, ext in s.execute(
        select(ChannelIdentity.channel, ChannelIdentity.external_id)
        .where(ChannelIdentity.member_id == member.id).order_by(ChannelIdentity.id.desc()))}
    return [Address(ch, found[ch]) for ch in ("wechat", "webchat") if ch in found] + sms_address(member)


def addresses_of(s: Session, member_ids: list[int]) -> dict[int, list[Address]]:
    """:func:`addresses` on WeChat and web chat of many members at once (SMS: :func:`sms_address`)."""
    found: dict[int, dict[str, str]] = {}
    for i in range(0, len(member_ids), 900):
        for mid, ch, ext in s.execute(
                select(ChannelIdentity.member_id, ChannelIdentity.channel, ChannelIdentity.external_id)
                .where(ChannelIdentity.member_id.in_(member_ids[i:i + 900])).order_by(ChannelIdentity.id.desc())):
            found.setdefault(mid, {})[ch] = ext
    return {mid: [Address(ch, chans[ch]) for ch in ("wechat", "webchat") if ch in chans]
            for mid, chans in found.items()}


def sms_address(member: Member) -> list[Address]:
    return [Address("sms", member.phone)] if member.sms_opt_in and member.phone else []


def marketing_sent(s: Session, member_id: int, since: datetime) -> int:
    """Marketing messages sent (or being sent) to a member since ``since``, across journeys."""
    return marketing_sent_by_member(s, [member_id], since).get(member_id, 0)


def marketing_sent_by_member(s: Session, member_ids: list[int], since: datetime) -> dict[int, int]:
    """:func:`marketing_sent` of many members at once (absent: none)."""
    out: dict[int, int] = {}
    for i in range(0, len(member_ids), 900):
        out.update({mid: int(n) for mid, n in s.execute(
            select(OutreachSend.member_id, func.count())
            .where(OutreachSend.member_id.in_(member_ids[i:i + 900]), OutreachSend.kind == MARKETING,
                   OutreachSend.status.in_(SPENT), OutreachSend.done_at >= since)
            .group_by(OutreachSend.member_id))})
    return out


def inbox_put(s: Session, send: OutreachSend, text: str, now: datetime) -> int:
    row = InboxMessage(member_id=send.member_id, send_id=send.id, text=text, created_at=now)
    s.add(row)
    s.flush()
    return int(row.id)


def inbox_take(s: Session, member_id: int, now: datetime | None = None) -> list[str]:
    """The member's unseen web chat messages, oldest first, marked seen (shown at the next visit)."""
    rows = list(s.execute(select(InboxMessage).where(InboxMessage.member_id == member_id,
                                                      InboxMessage.seen_at.is_(None)).order_by(InboxMessage.id)
                          .with_for_update()).scalars())
    for r in rows:
        r.seen_at = now_or(now)
    return [r.text for r in rows]


def language_of(member: Member) -> str:
    """The language the member's messages are written in: theirs, Chinese when unknown."""
    return "en" if member.language == "en" else "zh"


def tier_names() -> dict[str, tuple[str, str]]:
    return {t.code: (t.name_zh, t.name_en) for t in core_settings().tiers}


def inbox_seen(s: Session, send_id: int, now: datetime | None = None) -> None:
    """An open page showed the message at once: it is not shown again at the next visit."""
    s.execute(update(InboxMessage).where(InboxMessage.send_id == send_id, InboxMessage.seen_at.is_(None))
              .values(seen_at=now_or(now)))


def inbox_for_visitor(s: Session, visitor: str, now: datetime | None = None) -> list[str]:
    """The unseen inbox of the member a web chat visitor is linked to (none for a stranger)."""
    member_id = identity_owner(s, "webchat", visitor)
    return inbox_take(s, member_id, now) if member_id is not None else []
