"""The zh/en copy staff may edit: each journey step's (in place of the code's) and a broadcast's until it is planned.

Copy is checked before it is saved, so a message can never go out broken:
both languages present, at most :data:`MAX_CHARS` characters (a phone
screen; WeChat shortens its fields further), and placeholders only those the
step fills (``{points}``, ``{date}`` …, as its code copy uses, and for any
message the member's store and two recommendations), written plainly:
no format specs, no attribute look-ups, no stray braces. Every change is
audited; a reset brings the code's copy back.
"""

from __future__ import annotations

from datetime import datetime
from string import Formatter
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.common import now_or
from loyalty.db import add_first
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.outreach.journeys import JOURNEYS, Step, broadcast_step
from loyalty.outreach.models import Broadcast, JourneyCopy

MAX_CHARS = 300
# What any message may name: render() fills these for every member (their store, two recommendations).
MEMBER_FIELDS = frozenset({"store_zh", "store_en", "reco_zh", "reco_en"})


def fields(text: str) -> set[str]:
    """The placeholders of ``text``; ValueError for a stray brace, a format spec or a conversion."""
    out = set()
    for _, name, spec, conversion in Formatter().parse(text):
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise ValueError(f"{{{name}}}")
        out.add(name)
    return out


def allowed_fields(journey: str, step: str) -> frozenset[str]:
    """The placeholders a step's copy may use: the member's own, and those of its code copy in either language."""
    if journey.startswith("broadcast:"):
        return MEMBER_FIELDS
    base = code_step(journey, step)
    return MEMBER_FIELDS | fields(base.zh) | fields(base.en)


def check(text_zh: object, text_en: object, allowed: frozenset[str]) -> tuple[str, str]:
    """Both texts stripped, or InvalidInput naming the field at fault."""
    out = []
    for name, raw in (("text_zh", text_zh), ("text_en", text_en)):
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            raise InvalidInput(f"{name} is required.", code="invalid_copy", field=name)
        if len(text) > MAX_CHARS:
            raise InvalidInput(f"{name} is {len(text)} characters; at most {MAX_CHARS} fit a phone screen.",
                               code="invalid_copy", field=name)
        try:
            unknown = sorted(fields(text) - allowed)
        except ValueError as exc:
            raise InvalidInput(f"{name}: {exc} is no placeholder; write braces only around one of: "
                               f"{', '.join(sorted(allowed)) or 'none'}.", code="invalid_copy", field=name) from None
        if unknown:
            raise InvalidInput(f"{name}: {{{unknown[0]}}} is not filled in for this message; it may use "
                               f"{', '.join('{' + f + '}' for f in sorted(allowed)) or 'no placeholder'}.",
                               code="invalid_copy", field=name)
        out.append(text)
    return out[0], out[1]


def code_step(journey: str, step: str) -> Step:
    j = JOURNEYS.get(journey)
    if j is None or step not in j.steps:
        raise NotFound(f"No step {step!r} of journey {journey!r}.", code="journey_not_found")
    return j.steps[step]


def step(s: Session, journey: str, step_name: str) -> Step:
    """A journey step with the copy staff gave it, or the code's."""
    base = code_step(journey, step_name)
    row = s.get(JourneyCopy, (journey, step_name))
    return base if row is None else Step(base.name, base.kind, row.text_zh, row.text_en)


def _broadcast(s: Session, code: str) -> Broadcast:
    b = s.execute(select(Broadcast).where(Broadcast.code == code)).scalar_one_or_none()
    if b is None:
        raise NotFound(f"No broadcast {code!r}.", code="broadcast_not_found")
    return b


def copies(s: Session, journey: str) -> list[dict[str, Any]]:
    """Each step of a journey (or a broadcast's one) with its copy now, the code's, and who changed it last."""
    if journey.startswith("broadcast:"):
        b = _broadcast(s, journey.split(":", 1)[1])
        return [{"step": "main", "kind": "marketing", "text_zh": b.text_zh, "text_en": b.text_en,
                 "code_zh": None, "code_en": None, "edited": False, "editable": b.planned_at is None,
                 "fields": sorted(MEMBER_FIELDS)}]
    code_steps = JOURNEYS[journey].steps if journey in JOURNEYS else None
    if code_steps is None:
        raise NotFound(f"No journey {journey!r}.", code="journey_not_found")
    rows = {r.step: r for r in s.execute(select(JourneyCopy).where(JourneyCopy.journey == journey)).scalars()}
    out = []
    for name, base in code_steps.items():
        r = rows.get(name)
        out.append({"step": name, "kind": base.kind, "text_zh": r.text_zh if r else base.zh,
                    "text_en": r.text_en if r else base.en, "code_zh": base.zh, "code_en": base.en,
                    "edited": r is not None, "editable": True,
                    "edited_by": r.actor if r else None, "edited_at": r.changed_at.isoformat() if r else None,
                    "fields": sorted(allowed_fields(journey, name))})
    return out


def set_copy(s: Session, journey: str, step_name: str, text_zh: object, text_en: object, *, actor: str,
             now: datetime | None = None) -> Step:
    """Give a journey step (or an unplanned broadcast) new copy; the next message sent uses it."""
    zh, en = check(text_zh, text_en, allowed_fields(journey, step_name))
    if journey.startswith("broadcast:"):
        b = _broadcast(s, journey.split(":", 1)[1])
        if b.planned_at is not None:
            raise Refused("This broadcast's sends are planned already; its copy can no longer change.",
                          code="broadcast_planned")
        b.text_zh, b.text_en = zh, en
        audit(s, actor, "broadcast_copy", None, note=journey)
        return broadcast_step(zh, en)
    base = code_step(journey, step_name)
    at = now_or(now)
    row = s.get(JourneyCopy, (journey, step_name))
    if row is None and not add_first(s, JourneyCopy(journey=journey, step=step_name, text_zh=zh, text_en=en,
                                                    actor=actor, changed_at=at)):
        row = s.get(JourneyCopy, (journey, step_name))  # saved by another staff member meanwhile: ours wins
    if row is not None:
        row.text_zh, row.text_en, row.actor, row.changed_at = zh, en, actor, at
    s.flush()
    audit(s, actor, "journey_copy", None, note=f"{journey}:{step_name}")
    return Step(base.name, base.kind, zh, en)


def reset_copy(s: Session, journey: str, step_name: str, *, actor: str) -> Step:
    """Back to the code's copy."""
    base = code_step(journey, step_name)
    s.execute(delete(JourneyCopy).where(JourneyCopy.journey == journey, JourneyCopy.step == step_name))
    audit(s, actor, "journey_copy_reset", None, note=f"{journey}:{step_name}")
    return base
