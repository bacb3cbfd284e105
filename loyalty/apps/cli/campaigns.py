"""Coupon campaigns and the birthday gifts job."""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import config, db
from loyalty.apps.cli.common import (
    EXIT_OK,
    UsageError,
    command_group,
    int_in,
    local_time,
    parse_day,
    parse_last_day,
    parse_when,
    parse_yuan,
    progress_bar,
    table,
    text_of,
    through,
)
from loyalty.catalogue.models import Product
from loyalty.common import fen_to_yuan, local_date, yuan_to_fen
from loyalty.coupons import gifts
from loyalty.coupons import service as coupons
from loyalty.coupons.models import CouponCampaign
from loyalty.errors import InvalidInput


def _campaign_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The create_campaign fields of the command line, after the checks the service leaves to callers."""
    only = {"--threshold": ("threshold", a.threshold), "--discount": ("threshold", a.discount),
            "--percent": ("percent", a.percent), "--gift-sku": ("gift", a.gift_sku)}
    for flag, (kind, value) in only.items():
        if value is not None and a.kind != kind:
            raise UsageError(f"{flag} applies only to --kind {kind}")
    need = {"threshold": ("--discount", a.discount), "percent": ("--percent", a.percent),
            "gift": ("--gift-sku", a.gift_sku)}[a.kind]
    if need[1] is None:
        raise UsageError(f"--kind {a.kind} needs {need[0]}")
    # A date means whole local days: claims from the first day's midnight through the last day.
    start = a.claim_start
    end = a.claim_end
    until = a.valid_until
    if start and end and end <= start:
        raise UsageError("--claim-end must be after --claim-start")
    if until is not None and until <= db.utcnow():
        raise UsageError("--valid-until is in the past")
    if until is not None and start is not None and until <= start:
        raise UsageError("--valid-until must be after --claim-start")
    f: dict[str, Any] = {
        "code": a.code, "kind": a.kind, "name_zh": a.name_zh, "name_en": a.name_en, "audience": a.audience,
        "per_member_limit": a.limit, "points_cost": a.points_cost, "total_stock": a.stock,
        "claim_start": start, "claim_end": end, "valid_until": until, "valid_days": a.valid_days,
        "min_tier": a.min_tier, "target_segment": a.segment,
    }
    if a.kind == "threshold":
        f["threshold_fen"] = a.threshold or 0
        f["discount_fen"] = a.discount
    elif a.kind == "percent":
        f["percent_off"] = a.percent
    else:
        f["gift_sku"] = a.gift_sku
    return f


def _create_campaign(s: Session, fields: dict[str, Any], actor: str) -> coupons.CampaignView:
    sku = fields.get("gift_sku")
    if sku and s.execute(select(Product.id).where(Product.sku == sku)).first() is None:
        raise InvalidInput(f"No product has SKU {sku!r}; --gift-sku must be a catalogue SKU.", code="unknown_sku")
    return coupons.create_campaign(s, actor=actor, **fields)


def _terms(kind: str, threshold_fen: int, discount_fen: int, percent_off: int, gift_sku: str | None) -> str:
    if kind == "threshold":
        off = fen_to_yuan(discount_fen).removesuffix(".00")
        if not threshold_fen:
            return f"无门槛减{off} ({off} off)"
        least = fen_to_yuan(threshold_fen).removesuffix(".00")
        return f"满{least}减{off} ({off} off {least})"
    if kind == "percent":
        zhe = Decimal(100 - percent_off) / 10
        return f"{zhe.normalize():f}折 ({percent_off}% off)"
    return f"兑换 {gift_sku} (gift)"


def cmd_campaign_create(a: argparse.Namespace) -> int:
    fields = _campaign_fields(a)
    v = db.run(_create_campaign, fields, a.actor)
    c_end = f", claims {through(v.claim_end)}" if v.claim_end else ""
    stock = f", stock {v.left}" if v.left is not None else ""
    cost = f", costs {v.points_cost} points" if v.points_cost else ""
    terms = _terms(v.kind, yuan_to_fen(v.threshold), yuan_to_fen(v.discount), v.percent_off, v.gift_sku)
    print(f"created campaign {v.code} (id {v.id}): {v.name_zh} / {v.name_en}: {terms}{stock}{cost}{c_end}")
    return EXIT_OK


def _all_campaigns(s: Session) -> list[CouponCampaign]:
    return list(s.execute(select(CouponCampaign).order_by(CouponCampaign.id)).scalars())


def cmd_campaign_list(a: argparse.Namespace) -> int:
    rows = []
    for c in db.run(_all_campaigns, readonly=True):
        stock = "unlimited" if c.total_stock is None else f"{c.total_stock - c.issued}/{c.total_stock}"
        window = "always" if not (c.claim_start or c.claim_end) else (
            f"from {local_time(c.claim_start)} " if c.claim_start else "") + through(c.claim_end)
        valid = ", ".join(x for x in (f"{c.valid_days} days" if c.valid_days else "",
                                      through(c.valid_until) if c.valid_until else "") if x)
        rows.append((
            c.code, c.audience, _terms(c.kind, c.threshold_fen, c.discount_fen, c.percent_off, c.gift_sku),
            stock, c.issued, c.points_cost or "-", c.min_tier or "-", c.target_segment or "-", window, valid,
            "yes" if c.active else "no", c.name_zh,
        ))
    if not rows:
        print("no campaigns yet: python -m loyalty campaign create --help")
        return EXIT_OK
    table(("code", "audience", "terms", "left", "issued", "points", "tier", "segment", "claim window",
            "valid", "active", "name"), rows)
    return EXIT_OK


def cmd_gifts_birthday(a: argparse.Namespace) -> int:
    today = a.date or local_date(db.utcnow())
    due = db.run(gifts.birthday_members, today, readonly=True)
    held = 0
    with progress_bar(len(due), "birthday gifts", "member") as bar:
        for mid in due:
            # Idempotent per member and year: a re-run finds the coupon given before.
            held += db.run(gifts.grant_birthday, mid, today) is not None
            bar.update()
    print(f"{len(due)} members celebrate on {today}: {held} hold their birthday coupon, "
          f"{len(due) - held} have none (tier without a birthday gift, or the campaign is missing or empty)")
    return EXIT_OK


def add_campaign(sub: Any) -> None:
    cg = command_group(sub, "campaign", "coupon campaigns")
    c = cg.add_parser("create", help="create a coupon campaign",
                      description="Amounts in yuan. A date means whole local days: --claim-end and "
                                  "--valid-until include the day given.")
    c.add_argument("--code", required=True, type=text_of(40))
    c.add_argument("--kind", required=True, choices=coupons.KINDS, help="threshold 满减 | percent 折扣 | gift 兑换")
    c.add_argument("--name-zh", required=True, type=text_of(100))
    c.add_argument("--name-en", required=True, type=text_of(100))
    c.add_argument("--threshold", type=parse_yuan, help="threshold: minimum order in yuan (default 0, no minimum)")
    c.add_argument("--discount", type=parse_yuan, help="threshold: yuan taken off")
    c.add_argument("--percent", type=int_in(1, 99), help="percent: percent off (20 = 8折)")
    c.add_argument("--gift-sku", type=text_of(64), help="gift: the SKU given")
    c.add_argument("--stock", type=int_in(0, 10_000_000), help="coupons available in all (default unlimited)")
    c.add_argument("--limit", type=int_in(0, 1000), default=1, help="coupons per member (0: no limit; default 1)")
    c.add_argument("--claim-start", type=parse_when, help="first day (or time) it can be claimed")
    c.add_argument("--claim-end", type=parse_last_day, help="last day it can be claimed (or the end time)")
    v = c.add_mutually_exclusive_group(required=True)
    v.add_argument("--valid-days", type=int_in(1, 3650), help="each coupon is valid this many days from its claim")
    v.add_argument("--valid-until", type=parse_last_day, help="last day every coupon can be used")
    c.add_argument("--points-cost", type=int_in(0, 10_000_000), default=0, help="points to exchange (default 0)")
    c.add_argument("--min-tier", choices=[t.code for t in config.settings().tiers], help="lowest tier that may claim")
    c.add_argument("--segment", type=text_of(30), help="only members of this segment may claim")
    c.add_argument("--audience", choices=coupons.AUDIENCES, default="public",
                   help="public: listed to shoppers; others are granted (default public)")
    c.add_argument("--actor", type=text_of(64), default="cli", help="who creates it, for the audit log")
    c.set_defaults(func=cmd_campaign_create)
    cg.add_parser("list", help="list every campaign").set_defaults(func=cmd_campaign_list)


def add_gifts(sub: Any) -> None:
    gg = command_group(sub, "gifts", "gifts")
    bd = gg.add_parser("birthday", help="give today's birthday coupons (once a year per member)",
                       description="Coupons given are valid from the moment the job runs.")
    bd.add_argument("--date", type=parse_day, help="the birthday to celebrate (default today, Asia/Shanghai)")
    bd.set_defaults(func=cmd_gifts_birthday)
