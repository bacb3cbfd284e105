"""Running campaigns after they start: edit what may still change, pause, resume, end.

Once a coupon is out, what it is (kind, amounts, validity) stays as it was
claimed; names, stock (not below what is issued), the per-member limit and
the claim window's end may still change. Every change is checked as on
creation and audited; a refused change writes nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.audit import audit
from loyalty.common import now_or
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.coupons.service import campaign_by_code, check_campaign_fields, view
from loyalty.errors import InvalidInput, Refused

#: Fields that may change while a campaign runs.
EDITABLE = ("name_zh", "name_en", "total_stock", "per_member_limit", "claim_end")
STATES = ("pause", "resume", "end")


def campaign_row(c: CouponCampaign, claimed: int = 0, now: datetime | None = None) -> dict[str, Any]:
    """A campaign as the staff app lists it."""
    at = now_or(now)
    ended = c.claim_end is not None and c.claim_end <= at
    state = "ended" if ended else "active" if c.active else "paused"
    return {**asdict(view(c)), "state": state, "audience": c.audience, "total_stock": c.total_stock,
            "issued": c.issued, "per_member_limit": c.per_member_limit, "claim_start": c.claim_start,
            "valid_days": c.valid_days, "valid_until": c.valid_until, "claimed": claimed}


def campaigns(s: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every campaign, newest first, with how many coupons were claimed."""
    claimed = dict(s.execute(select(Coupon.campaign_id, func.count()).group_by(Coupon.campaign_id)).all())
    rows = s.execute(select(CouponCampaign).order_by(CouponCampaign.id.desc())).scalars()
    return [campaign_row(c, claimed.get(c.id, 0), now) for c in rows]


def edit_campaign(s: Session, code: str, changes: dict[str, Any], *, actor: str) -> dict[str, Any]:
    """Change what may still change of a campaign (see :data:`EDITABLE`)."""
    c = campaign_by_code(s, code)
    fixed = sorted(set(changes) - set(EDITABLE))
    if fixed:
        raise InvalidInput(f"These cannot change once a campaign exists: {', '.join(fixed)}",
                           code="invalid_campaign", field=fixed[0])
    check_campaign_fields(changes)
    for name in ("name_zh", "name_en"):
        if name in changes and not (changes[name] or "").strip():
            raise InvalidInput("A campaign needs a Chinese and an English name.", code="invalid_campaign",
                               field=name)
    stock = changes.get("total_stock", c.total_stock)
    if stock is not None and stock < c.issued:
        raise InvalidInput(f"Stock cannot go below the {c.issued} coupons already issued.",
                           code="invalid_campaign", field="total_stock")
    end = changes.get("claim_end", c.claim_end)
    if end is not None and c.claim_start is not None and end <= c.claim_start:
        raise InvalidInput("claim_start must come before claim_end.", code="invalid_campaign", field="claim_end")
    for name, value in changes.items():
        setattr(c, name, value)
    s.flush()
    audit(s, actor, "campaign_edit", None, campaign=c.code, fields=sorted(changes))
    return campaign_row(c)


def set_state(s: Session, code: str, act: str, *, actor: str, now: datetime | None = None) -> dict[str, Any]:
    """Pause (no new claims), resume, or end (claims close now for good) a campaign."""
    if act not in STATES:
        raise InvalidInput(f"act is one of {', '.join(STATES)}", code="invalid_act")
    at = now_or(now)
    c = campaign_by_code(s, code)
    if c.claim_end is not None and c.claim_end <= at:
        raise Refused("This campaign has ended.", code="campaign_ended")
    if act == "end":
        c.active, c.claim_end = False, at
    else:
        c.active = act == "resume"
    audit(s, actor, f"campaign_{act}", None, campaign=c.code)
    return campaign_row(c, now=at)
