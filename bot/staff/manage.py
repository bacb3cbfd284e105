"""What the staff app's forms and lists need from the core: parsed form input, store lists, the QR sheet."""

from __future__ import annotations

import asyncio
import io
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.qr.codes import StoreQrCodes
from bot.qr.render import render
from loyalty.catalogue import service as catalogue
from loyalty.catalogue.models import Store
from loyalty.coupons import admin
from loyalty.coupons import service as coupons
from loyalty.errors import InvalidInput, NotFound
from loyalty.nlu_review import service as review

SHANGHAI = timezone(timedelta(hours=8))
MONEY = ("threshold", "discount")
INTS = ("percent_off", "total_stock", "per_member_limit", "valid_days", "points_cost")
DATES = ("claim_start", "claim_end", "valid_until")
TEXTS = ("code", "name_zh", "name_en", "kind", "gift_sku")
A4 = (1240, 1754)  # pixels at 150 dpi


def store_id(s: Session, code: str) -> int:
    """A store's id by its code; NotFound if none has it."""
    sid = s.execute(select(Store.id).where(Store.code == code)).scalar()
    if sid is None:
        raise NotFound("No store has this code.", code="unknown_store")
    return int(sid)


def stores(s: Session, only: str | None) -> list[dict[str, Any]]:
    """Active stores (just ``only`` for a store manager)."""
    rows = catalogue.stores(s)
    return [{"code": st.code, "name_zh": st.name_zh, "name_en": st.name_en, "city": st.city}
            for st in rows if only is None or st.code == only]


def _field_error(name: str, message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_campaign", field=name)


def form_fields(form: dict[str, Any], *, editing: bool = False) -> dict[str, Any]:
    """The core's campaign fields from the page's form: yuan to fen, whole numbers, Shanghai days to times.

    Empty inputs are left out; anything unreadable is refused naming its field.
    """
    out: dict[str, Any] = {}
    for name, raw in form.items():
        value = raw.strip() if isinstance(raw, str) else raw
        if value in ("", None):
            continue
        if name in MONEY:
            try:
                yuan = Decimal(str(value))
            except InvalidOperation:
                raise _field_error(name, f"{name} is an amount in yuan, e.g. 20 or 19.90.") from None
            if yuan != yuan.quantize(Decimal("0.01")) or yuan < 0:
                raise _field_error(name, f"{name} is an amount in yuan, not negative, at most 2 decimals.")
            out[f"{name}_fen"] = int(yuan * 100)
        elif name in INTS:
            try:
                out[name] = int(str(value))
            except ValueError:
                raise _field_error(name, f"{name} is a whole number.") from None
        elif name in DATES:
            try:
                day = date.fromisoformat(str(value))
            except ValueError:
                raise _field_error(name, f"{name} is a date, YYYY-MM-DD.") from None
            # A claim window or validity ends at the end of its last day, Shanghai time.
            shift = timedelta(days=1) if name in ("claim_end", "valid_until") else timedelta()
            out[name] = datetime.combine(day + shift, time(), SHANGHAI).astimezone(timezone.utc)
        elif name in TEXTS:
            out[name] = str(value)
        else:
            raise _field_error(name, f"Unknown field {name}.")
    if editing:
        out.pop("code", None)
    return out


def create_campaign(s: Session, form: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """Create a campaign from the page's form (one transaction: refused means nothing written)."""
    c = coupons.create_campaign(s, actor=actor, **form_fields(form))
    return admin.campaign_row(coupons.campaign_by_code(s, c.code))


def edit_campaign(s: Session, code: str, form: dict[str, Any], *, actor: str) -> dict[str, Any]:
    return admin.edit_campaign(s, code, form_fields(form, editing=True), actor=actor)


def set_state(s: Session, code: str, act: str, *, actor: str) -> dict[str, Any]:
    return admin.set_state(s, code, act, actor=actor)


def campaigns(s: Session) -> list[dict[str, Any]]:
    return admin.campaigns(s)


def review_list(s: Session) -> list[dict[str, Any]]:
    """The messages not understood, waiting for a person, with the model's suggested intent."""
    return [{"id": m.id, "text": m.text, "language": m.language, "channel": m.channel, "seen": m.seen,
             "suggested": m.intent, "confidence": round(m.confidence, 3), "status": m.status}
            for m in review.messages(s, status="new", limit=100)]


def review_pick(s: Session, message_id: int, intent: object, *, by: str) -> dict[str, Any]:
    """Staff pick the right intent; ``"-"`` dismisses the message."""
    if intent == "-":
        item = review.dismiss(s, message_id, by=by)
    elif isinstance(intent, str):
        item = review.review(s, message_id, intent.strip(), by=by)
    else:
        raise InvalidInput("Pick an intent.", code="bad_intent")
    return {"id": item.id, "status": item.status, "intent": item.reviewed_intent}


def review_export(s: Session) -> str:
    """The reviewed messages as Rasa NLU training examples (YAML), grouped by intent."""
    examples: dict[str, list[str]] = {}
    for m in review.reviewed(s):
        if m.reviewed_intent:
            examples.setdefault(m.reviewed_intent, []).append(m.text)
    return review.render_nlu(examples)


def _sheet(tent: bytes) -> bytes:
    """Four copies of a store's table tent on one A4 page (2 × 2), ready to print and cut."""
    page = Image.new("RGB", A4, "white")
    img = Image.open(io.BytesIO(tent)).convert("RGB")
    cell = (A4[0] // 2, A4[1] // 2)
    img.thumbnail((cell[0] - 80, cell[1] - 80))
    for col in range(2):
        for row in range(2):
            x = col * cell[0] + (cell[0] - img.width) // 2
            y = row * cell[1] + (cell[1] - img.height) // 2
            page.paste(img, (x, y))
    out = io.BytesIO()
    page.save(out, "PNG", dpi=(150, 150))
    return out.getvalue()


async def qr_sheet(code: str) -> bytes:
    """A printable A4 PNG of a store's QR table tents (name and code under each)."""
    codes = StoreQrCodes.from_env()
    try:
        qr = await codes.target(code)
    finally:
        codes.close()
    return await asyncio.to_thread(_sheet, render(qr, "png"))
