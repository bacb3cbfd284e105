"""What a journey or broadcast would do now, without writing anything: audience, holdout, skips, samples."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.members.models import ChannelIdentity, Member
from loyalty.outreach import rules
from loyalty.outreach import service as svc
from loyalty.outreach.delivery import render
from loyalty.outreach.journeys import JOURNEYS, MARKETING, Candidate
from loyalty.outreach.models import OutreachSend
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings


@dataclass(frozen=True)
class Preview:
    journey: str
    audience: int  # candidates found now
    already: int  # planned before (their idempotency key exists)
    control: int
    would_send: int
    skips: dict[str, int]  # rule -> members it would skip
    held_until: datetime | None  # quiet hours: when the sends would go
    languages: dict[str, int]  # language -> members it would send to in it
    samples: list[tuple[int, str, str, str]]  # member id, their language, zh text, en text


def _candidates(s: Session, journey: str, at: datetime) -> list[Candidate]:
    if journey.startswith("broadcast:"):
        b = svc._broadcast(s, journey.split(":", 1)[1])
        return [Candidate(mid, "main", b.code) for mid in svc._audience(s, b.audience)]
    return JOURNEYS[journey].find(s, at)


def _over_cap(s: Session, at: datetime, cfg: OutreachSettings) -> set[int]:
    q = (select(OutreachSend.member_id).where(
        OutreachSend.kind == MARKETING, OutreachSend.status.in_(svc.SPENT),
        OutreachSend.done_at >= at - timedelta(days=cfg.cap_days))
        .group_by(OutreachSend.member_id).having(func.count() >= cfg.cap_messages))
    return set(s.execute(q).scalars())


def _reachable(s: Session) -> set[int]:
    ids = set(s.execute(select(ChannelIdentity.member_id).where(
        ChannelIdentity.channel.in_(("wechat", "webchat")))).scalars())
    return ids | set(s.execute(select(Member.id).where(Member.sms_opt_in.is_(True),
                                                        Member.phone.is_not(None))).scalars())


def preview(s: Session, journey: str, now: datetime | None = None, cfg: OutreachSettings | None = None,
            samples: int = 3) -> Preview:
    """The audience, control and skips of ``journey`` as of ``now``, and a few rendered messages."""
    at, cfg = now_or(now), cfg or outreach_settings()
    found = _candidates(s, journey, at)
    keys = {svc.idem_key(c.member_id, journey, c.step, c.occasion): c for c in found}
    existing: set[str] = set()
    ordered = list(keys)
    for i in range(0, len(ordered), 900):
        existing |= set(s.execute(select(OutreachSend.idem_key).where(
            OutreachSend.idem_key.in_(ordered[i:i + 900]))).scalars())
    fresh = [c for k, c in keys.items() if k not in existing]
    steps = {"main": svc.step_for(s, journey)} if journey.startswith("broadcast:") else JOURNEYS[journey].steps
    rows = svc._rows(s, journey, steps, fresh, at, cfg)
    skips: Counter[str] = Counter(r["reason"] for r in rows if r["status"] == "skipped")
    due = [r for r in rows if r["status"] == "due"]
    capped, reachable = _over_cap(s, at, cfg), _reachable(s)
    sendable = []
    for r in due:
        if r["kind"] == MARKETING and r["member_id"] in capped:
            skips["frequency_cap"] += 1
        elif r["member_id"] not in reachable:
            skips["no_channel"] += 1
        else:
            sendable.append(r)
    language = _languages(s, {r["member_id"] for r in sendable})
    shown = []
    for r in sendable[:samples]:
        send = OutreachSend(member_id=r["member_id"], journey=journey, step=r["step"], facts=r["facts"])
        shown.append((r["member_id"], language.get(r["member_id"], "zh"), render(s, send, "zh"),
                      render(s, send, "en")))
    held = rules.hold(at, cfg.quiet_start, cfg.quiet_end)
    return Preview(journey, len(found), len(existing), sum(r["status"] == "control" for r in rows),
                   len(sendable), dict(skips), held if held != at else None,
                   dict(Counter(language.get(r["member_id"], "zh") for r in sendable)), shown)


def _languages(s: Session, ids: set[int]) -> dict[int, str]:
    """Each member's language (the copy they would get), in chunks."""
    out: dict[int, str] = {}
    ordered = sorted(ids)
    for i in range(0, len(ordered), 900):
        q = select(Member.id, Member.language).where(Member.id.in_(ordered[i:i + 900]))
        out.update({mid: "en" if lang == "en" else "zh" for mid, lang in s.execute(q)})  # as language_of
    return out
