"""Birthday gifts: one coupon a year from the member's tier, 29 February handled."""

from __future__ import annotations

import calendar
from datetime import date

from sqlalchemy import extract, select
from sqlalchemy.orm import Session

from loyalty.config import settings
from loyalty.coupons import service as coupons
from loyalty.errors import NotFound, Refused
from loyalty.members.models import Member


def birthday_in_year(birthday: date, year: int) -> date:
    """The day a birthday is celebrated in ``year``: 29 February becomes 28 February in common years."""
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return birthday.replace(year=year)


def birthday_members(s: Session, today: date) -> list[int]:
    """Active members whose birthday is celebrated on ``today``."""
    q = select(Member.id, Member.birthday).where(
        Member.status == "active",
        Member.birthday.is_not(None),
        extract("month", Member.birthday) == today.month,
    )
    return [mid for mid, b in s.execute(q).all() if birthday_in_year(b, today.year) == today]


def grant_birthday(s: Session, member_id: int, today: date) -> str | None:
    """Give the member's tier birthday coupon once for ``today.year``; returns the code or None."""
    m = s.get(Member, member_id)
    if m is None or m.status != "active" or m.birthday is None:
        return None
    if birthday_in_year(m.birthday, today.year) != today:
        return None
    campaign = settings().tier(m.tier).birthday_coupon
    if not campaign:
        return None
    try:
        # A savepoint: a grant refused half-way (stock gone) must leave no counter behind.
        with s.begin_nested():
            return coupons.grant(s, member_id, campaign, key=f"birthday:{today.year}").coupon.code
    except (NotFound, Refused):
        return None
