"""The staff app's journeys and broadcasts: the broadcast form read into a draft, preview and save."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.orm import Session

from bot.staff.manage import store_id
from loyalty.errors import InvalidInput, NotFound
from loyalty.reports import outreach as journeys

SHANGHAI = timezone(timedelta(hours=8))
AUDIENCE = ("segment", "tier", "lifecycle", "store", "tag")


def _field(name: str, message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_broadcast", field=name)


def draft(s: Session, form: dict[str, Any]) -> journeys.Draft:
    """A draft broadcast from the page's form: code, zh and en text, a Shanghai time, audience criteria.

    Empty criteria are left out (no criterion: every active member); a store is given by its code.
    """
    def text(name: str) -> str:
        raw = form.get(name)
        return raw.strip() if isinstance(raw, str) else ""

    code = text("code").upper()
    if not code or len(code) > 40 or not code.replace("-", "").replace("_", "").isalnum():
        raise _field("code", "code is 1 to 40 letters, digits, - or _.")
    for name in ("text_zh", "text_en"):
        if not text(name):
            raise _field(name, f"{name} is required.")
    try:
        local = datetime.fromisoformat(text("send_at"))
    except ValueError:
        raise _field("send_at", "send_at is a date and time, YYYY-MM-DDTHH:MM (Shanghai).") from None
    send_at = (local if local.tzinfo else local.replace(tzinfo=SHANGHAI)).astimezone(timezone.utc)
    audience: dict[str, Any] = {}
    for name in AUDIENCE:
        value = text(name)
        if not value:
            continue
        if name == "store":
            try:
                audience["store_id"] = store_id(s, value.upper())
            except NotFound:
                raise _field("store", "No store has this code.") from None
        else:
            audience[name] = value
    unknown = set(form) - {"code", "text_zh", "text_en", "send_at", *AUDIENCE}
    if unknown:
        raise _field(sorted(unknown)[0], f"Unknown field {sorted(unknown)[0]}.")
    return journeys.Draft(code, audience, text("text_zh"), text("text_en"), send_at)


def preview(s: Session, form: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """The draft's audience, control, skips and rendered message; nothing is written."""
    return journeys.preview_draft(s, draft(s, form), actor=actor)


def create(s: Session, form: dict[str, Any], *, actor: str) -> dict[str, Any]:
    return journeys.create_broadcast(s, draft(s, form), actor=actor)
