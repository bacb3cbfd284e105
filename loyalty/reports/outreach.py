"""Journeys and broadcasts for the staff app: each one's holdout report, its switch, and a draft's preview.

The figures are :func:`loyalty.outreach.report.journey_report`'s, one row per
journey and broadcast; this module only lists them, flattens them for a table
and a CSV, and previews a broadcast that is not saved yet. The outreach ledger
is not split by store, so these figures are for every store or none: the web
app refuses them to a store manager before any query runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.common import now_or
from loyalty.errors import InvalidInput, NotFound
from loyalty.members.models import Member
from loyalty.outreach import copy, outcomes, report
from loyalty.outreach import preview as previews
from loyalty.outreach import service as outreach
from loyalty.outreach.delivery import render
from loyalty.outreach.journeys import JOURNEYS
from loyalty.outreach.models import Broadcast, OutreachSend
from loyalty.outreach.settings import OutreachSettings
from loyalty.outreach.settings import from_env as outreach_settings

# {days} and {holdout} are filled from the outreach settings (OUTREACH_ATTRIBUTION_DAYS, OUTREACH_HOLDOUT_PERCENT).
_DEFINITION = (
    "默认为每个旅程与群发自开始以来的全部记录；选了日期时只计最近一次发送（或对照组本应发送）在这些日期内的会员，"
    "触达只计这些日期内发出的条数；选了门店时只计该门店（入会门店）的会员。实验组＝分到发送组的会员"
    "（发送时被规则跳过的也计入）；对照组＝按会员与旅程的哈希留出的 {holdout}% 会员，从不发送；"
    "规划时因退订或注销跳过的不计入任一组。触达＝实际发出的条数。"
    "转化率＝发送（或对照组本应发送）后 {days} 天内下单的会员占比；"
    "提升＝实验组转化率－对照组转化率，95% 置信区间用正态近似、两组方差分别估计；"
    "人均收入＝这 {days} 天内订单金额合计／组内会员数；券成本＝这 {days} 天内实验组核销的券面额合计。",
    "By default each journey and broadcast since it began; with dates, only the members whose latest send (or "
    "control moment) falls on those days, and reached counts the messages sent on them; with a store, only its "
    "(home-store) members. "
    "Treatment = members assigned to be messaged (counted even when a rule skipped them at send time); "
    "control = the {holdout} % holdout picked by a hash of member and journey, never messaged; members "
    "skipped at planning (opted out, closed) are in neither. Reached = messages actually sent. "
    "Conversion = the share of members who ordered within {days} days of the send (or of when a control "
    "member would have been sent); uplift = treatment − control conversion, with a 95 % interval (normal "
    "approximation, unpooled variances). Revenue per member = order amounts in those {days} days / members "
    "of the arm; coupon cost = face value of the coupons the treatment arm redeemed in those {days} days.",
)


def definitions(cfg: OutreachSettings | None = None) -> dict[str, tuple[str, str]]:
    """The section's definition (zh, en) with the configured attribution window and holdout."""
    cfg = cfg or outreach_settings()
    holdout = f"{cfg.holdout_percent:g}"
    zh, en = (d.format(days=cfg.attribution_days, holdout=holdout) for d in _DEFINITION)
    return {"journeys": (zh, en)}


def _finite(x: float) -> float | None:
    """An interval bound for JSON: none when an arm is empty (the interval is unbounded)."""
    return round(x, 4) if math.isfinite(x) else None


def _state(s: Session, name: str, cfg: OutreachSettings, b: Broadcast | None) -> str:
    if outreach.paused(s, name):
        return "paused"
    if b is not None:
        return "planned" if b.planned_at is not None else "scheduled"
    return "running" if name in cfg.journeys else "off"


def journey_rows(s: Session, cfg: OutreachSettings | None = None, *, live_only: bool = False,
                 cohort: report.Cohort = report.Cohort()) -> list[dict[str, Any]]:
    """One row per journey and broadcast: state, arms, reached, conversion and revenue uplift, coupon cost.

    ``live_only``: from the orders alone, ignoring the frozen outcomes (the same figures, slower).
    ``cohort``: the members whose latest send falls in its dates, of its store (default: everyone).
    """
    cfg = cfg or outreach_settings()
    named: list[tuple[str, Broadcast | None]] = [(name, None) for name in JOURNEYS]
    named += [(f"broadcast:{b.code}", b) for b in s.execute(select(Broadcast).order_by(Broadcast.send_at,
                                                                                         Broadcast.id)).scalars()]
    reports = report.journey_reports(s, [name for name, _ in named], cfg, live_only=live_only, cohort=cohort)
    out = []
    for name, b in named:
        r = reports[name]
        t, c, cu, ru = r.treatment, r.control, r.conversion_uplift, r.revenue_uplift_fen
        out.append({
            "journey": name, "kind": "broadcast" if b is not None else "journey", "state": _state(s, name, cfg, b),
            "send_at": b.send_at.isoformat() if b is not None else "",
            "treatment": t.members, "control": c.members, "reached": t.reached,
            # An empty arm has no rate (none rather than a misleading 0 %), and no difference.
            "conversion_treatment": round(t.conversion, 4) if t.members else None,
            "conversion_control": round(c.conversion, 4) if c.members else None,
            "uplift": round(cu.value, 4) if t.members and c.members else None,
            "uplift_low": _finite(cu.low), "uplift_high": _finite(cu.high),
            "revenue_per_member_treatment_fen": round(t.revenue_per_member_fen) if t.members else None,
            "revenue_per_member_control_fen": round(c.revenue_per_member_fen) if c.members else None,
            "revenue_uplift_low_fen": None if _finite(ru.low) is None else round(ru.low),
            "revenue_uplift_high_fen": None if _finite(ru.high) is None else round(ru.high),
            "redemptions": t.redemptions, "coupon_cost_fen": t.coupon_cost_fen,
        })
    return out


def journey_tab(s: Session, cfg: OutreachSettings | None = None, *,
                cohort: report.Cohort = report.Cohort()) -> dict[str, Any]:
    """The journeys tab: its rows, and up to when the outcomes of closed windows are frozen (none: all live)."""
    cfg = cfg or outreach_settings()
    until = outcomes.frozen_until(s, cfg.attribution_days)
    return {"journeys": journey_rows(s, cfg, cohort=cohort),
            "outcomes_frozen_until": until.isoformat() if until else None}


def set_paused(s: Session, journey: str, paused: bool, *, actor: str) -> dict[str, Any]:
    """Turn a journey or broadcast off (pause) or on again (audited under ``actor``)."""
    if journey.startswith("broadcast:") and s.execute(select(Broadcast.id).where(
            Broadcast.code == journey.split(":", 1)[1])).first() is None:
        raise NotFound(f"No broadcast {journey!r}.", code="broadcast_not_found")
    outreach.set_paused(s, journey, paused, actor=actor)
    s.flush()
    return {"journey": journey, "state": "paused" if paused else "resumed"}


@dataclass(frozen=True)
class Draft:
    """A broadcast as the staff form sends it, before it is saved."""

    code: str
    audience: dict[str, Any]
    text_zh: str
    text_en: str
    send_at: datetime


def _rendered(s: Session, journey: str, member_id: int | None) -> tuple[str, str]:
    send = OutreachSend(member_id=member_id, journey=journey, step="main", facts={})
    try:
        return render(s, send, "zh"), render(s, send, "en")
    except (ValueError, IndexError, KeyError):  # str.format on the copy: a stray brace
        raise InvalidInput("The text cannot hold { or } on its own.", code="invalid_broadcast",
                           field="text_zh") from None


def _check_new(s: Session, draft: Draft, now: datetime) -> None:
    """What the outreach core would only find out later (or as a database error): a past time, a code in use."""
    if draft.send_at < now:
        raise InvalidInput("The send time has passed.", code="invalid_broadcast", field="send_at")
    if s.execute(select(Broadcast.id).where(Broadcast.code == draft.code)).first() is not None:
        raise InvalidInput(f"A broadcast {draft.code!r} exists already.", code="invalid_broadcast", field="code")


def preview_view(p: previews.Preview, zh: str, en: str) -> dict[str, Any]:
    return {"journey": p.journey, "audience": p.audience, "already": p.already, "control": p.control,
            "would_send": p.would_send, "skips": p.skips,
            "held_until": p.held_until.isoformat() if p.held_until else None,
            "message_zh": zh, "message_en": en,
            "languages": p.languages,
            "samples": [{"member_id": m, "language": lang, "zh": z, "en": e} for m, lang, z, e in p.samples]}


def preview_journey(s: Session, journey: str, now: datetime | None = None,
                    cfg: OutreachSettings | None = None) -> dict[str, Any]:
    """What a saved journey or broadcast would do now (audience, control, skips, a rendered message)."""
    if journey not in JOURNEYS and not journey.startswith("broadcast:"):
        raise InvalidInput(f"No journey {journey!r}.", code="journey_not_found")
    p = previews.preview(s, journey, now, cfg)
    zh, en = (p.samples[0][2], p.samples[0][3]) if p.samples else ("", "")
    if not p.samples and journey.startswith("broadcast:"):
        zh, en = _rendered(s, journey, None)
    return preview_view(p, zh, en)


def preview_draft(s: Session, draft: Draft, *, actor: str, now: datetime | None = None,
                  cfg: OutreachSettings | None = None) -> dict[str, Any]:
    """A broadcast's preview before saving: it is created inside a savepoint that is rolled back.

    The numbers are those the saved broadcast would show (the same audience query and rules), and
    nothing is written: not the broadcast, not its audit line.
    """
    at = now_or(now)
    _check_new(s, draft, at)
    sp = s.begin_nested()
    try:
        outreach.create_broadcast(s, draft.code, draft.audience, draft.text_zh, draft.text_en, draft.send_at,
                                  actor=actor)
        name = f"broadcast:{draft.code}"
        # As of the send time: quiet hours and the frequency cap are judged then.
        try:
            p = previews.preview(s, name, max(at, draft.send_at), cfg)
        except (ValueError, IndexError, KeyError):  # str.format on the copy: a stray brace
            raise InvalidInput("The text cannot hold { or } on its own.", code="invalid_broadcast",
                               field="text_zh") from None
        zh, en = (p.samples[0][2], p.samples[0][3]) if p.samples else _rendered(s, name, None)
        return preview_view(p, zh, en)
    finally:
        sp.rollback()


def create_broadcast(s: Session, draft: Draft, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Save a broadcast (refusing copy that cannot render, a code in use and a time already past)."""
    _check_new(s, draft, now_or(now))
    outreach.create_broadcast(s, draft.code, draft.audience, draft.text_zh, draft.text_en, draft.send_at,
                              actor=actor)
    _rendered(s, f"broadcast:{draft.code}", None)
    return {"journey": f"broadcast:{draft.code}", "code": draft.code, "send_at": draft.send_at.isoformat()}


# Facts a journey's finder gives its sends, with sample values: a copy preview renders every placeholder.
SAMPLE_FACTS: dict[str, Any] = {"points": 500, "date": "2026-12-31", "coupon_zh": "满100减20券",
                                "coupon_en": "20 off 100 coupon", "coupon": "SAMPLE", "tier": "gold", "yuan": 300}


def journey_copy(s: Session, journey: str) -> dict[str, Any]:
    """The steps of a journey (or a broadcast) with their copy now and in code, and the placeholders each may use."""
    return {"journey": journey, "steps": copy.copies(s, journey), "max_chars": copy.MAX_CHARS}


def preview_copy(s: Session, journey: str, step: str, text_zh: object, text_en: object, *, actor: str,
                 now: datetime | None = None) -> dict[str, Any]:
    """Copy as a member would read it (sample facts, a real member's store and recommendations): it is
    saved inside a savepoint that is rolled back, so the checks are the save's and nothing is written."""
    sp = s.begin_nested()
    try:
        copy.set_copy(s, journey, step, text_zh, text_en, actor=actor, now=now)
        member = s.execute(select(Member.id).where(Member.status == "active").order_by(Member.id).limit(1)).scalar()
        send = OutreachSend(member_id=member, journey=journey, step=step, facts=dict(SAMPLE_FACTS))
        return {"journey": journey, "step": step, "message_zh": render(s, send, "zh"),
                "message_en": render(s, send, "en")}
    finally:
        sp.rollback()


def save_copy(s: Session, journey: str, step: str, text_zh: object, text_en: object, *, actor: str,
              reset: bool = False) -> dict[str, Any]:
    """Save a step's copy (or, with ``reset``, go back to the code's); the journey's steps as they now are."""
    if reset:
        copy.reset_copy(s, journey, step, actor=actor)
    else:
        copy.set_copy(s, journey, step, text_zh, text_en, actor=actor)
    return journey_copy(s, journey)
