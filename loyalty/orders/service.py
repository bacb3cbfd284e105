"""Order intake from tills and the web shop: earn on purchases, claw back on returns.

Idempotent on (source, external id): a replay returns the first result; the
same id with another payload is a conflict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from loyalty.catalogue.models import Product
from loyalty.catalogue.service import store_id_by_code
from loyalty.common import fen_to_yuan, now_or, txn_cache, yuan_to_fen
from loyalty.config import settings
from loyalty.errors import Conflict, InvalidInput, NotFound
from loyalty.members.lock import lock_member
from loyalty.members.models import Member
from loyalty.members.service import normalize_phone
from loyalty.orders.models import Order, OrderLine
from loyalty.points import service as points
from loyalty.referrals import service as referrals
from loyalty.tiers import service as tiers

MAX_LINES = 500
MAX_MEMBER_ID = 2**31 - 1  # members.id is a 32-bit integer on PostgreSQL
CLOCK_SKEW = timedelta(minutes=10)

# The statements of the order path, built once: on SQLite, building and keying a statement
# costs more than running it. Those on rows only Core writes (orders, order lines) run on the
# session's connection, below the ORM's execution layer.
_PRIOR = select(Order.payload_hash, Order.result).where(
    Order.source == bindparam("source"), Order.external_id == bindparam("external_id")
)
_PRODUCT_IDS = select(Product.sku, Product.id).where(Product.sku.in_(bindparam("skus", expanding=True)))
_NEW_ORDER = insert(Order)
_NEW_LINES = insert(OrderLine)
_SETTLE = (
    update(Order)
    .where(Order.id == bindparam("order_id"))
    .values(points=bindparam("earned"), result=bindparam("outcome", type_=Order.__table__.c.result.type))
    .execution_options(synchronize_session=False)
)


@dataclass(frozen=True)
class LineIn:
    sku: str
    qty: int
    unit_price_fen: int


@dataclass(frozen=True)
class OrderIn:
    """A validated order or return as posted by a till or the web shop."""

    external_id: str
    placed_at: datetime
    amount_fen: int
    store_code: str | None
    member_id: int | None
    phone: str | None
    channel: str
    lines: tuple[LineIn, ...]
    original_external_id: str | None = None
    original_source: str | None = None


def _text(v: Any, field: str, max_len: int = 64, required: bool = True) -> str | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise InvalidInput(f"{field} is required", code="missing_field", field=field)
        return None
    if not isinstance(v, str | int) or isinstance(v, bool):
        raise InvalidInput(f"{field} must be text", code="invalid_field", field=field)
    t = str(v).strip()
    if len(t) > max_len:
        raise InvalidInput(f"{field} is too long", code="invalid_field", field=field)
    return t


def _when(v: Any, now: datetime) -> datetime:
    if not isinstance(v, str):
        raise InvalidInput("placed_at must be an ISO 8601 time with a zone", code="invalid_time", field="placed_at")
    try:
        at = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("placed_at must be an ISO 8601 time", code="invalid_time", field="placed_at") from None
    if at.tzinfo is None:
        raise InvalidInput("placed_at needs a time zone", code="invalid_time", field="placed_at")
    try:
        # Stored in UTC: a zone that pushes year 1 or 9999 over the edge cannot be.
        at.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidInput("placed_at is out of range", code="invalid_time", field="placed_at") from None
    if at > now + CLOCK_SKEW:
        raise InvalidInput("placed_at is in the future", code="invalid_time", field="placed_at")
    return at


def parse(payload: Any, now: datetime, *, is_return: bool = False) -> OrderIn:
    """Validate a posted order or return; raises InvalidInput naming the bad field."""
    if not isinstance(payload, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_body")
    known = {"external_id", "placed_at", "amount", "store_code", "member_id", "phone", "channel", "lines",
             "original_external_id", "original_source"}
    unknown = set(payload) - known
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}", code="unknown_field")
    ext = _text(payload.get("external_id"), "external_id")
    at = _when(payload.get("placed_at"), now)
    amount = yuan_to_fen(payload.get("amount"), "amount")
    channel = payload.get("channel", "pos")
    if channel not in ("pos", "online"):
        raise InvalidInput("channel must be pos or online", code="invalid_field", field="channel")
    raw_lines = payload.get("lines", [])
    if not isinstance(raw_lines, list) or len(raw_lines) > MAX_LINES:
        raise InvalidInput(f"lines must be a list of at most {MAX_LINES}", code="invalid_field", field="lines")
    lines = []
    for i, ln in enumerate(raw_lines):
        if not isinstance(ln, dict):
            raise InvalidInput(f"lines[{i}] must be an object", code="invalid_field", field="lines")
        qty = ln.get("qty")
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 < qty <= 10_000:
            raise InvalidInput(f"lines[{i}].qty must be a whole number 1-10000", code="invalid_field", field="lines")
        sku = _text(ln.get("sku"), f"lines[{i}].sku")
        assert sku is not None
        lines.append(LineIn(sku, qty, yuan_to_fen(ln.get("unit_price"), f"lines[{i}].unit_price")))
    member_id = payload.get("member_id")
    if member_id is not None and (not isinstance(member_id, int) or isinstance(member_id, bool)
                                  or not 0 < member_id <= MAX_MEMBER_ID):
        # Beyond the column's range SQLite's driver overflows instead of finding nothing.
        raise InvalidInput(f"member_id must be a whole number 1-{MAX_MEMBER_ID}", code="invalid_field",
                           field="member_id")
    phone = payload.get("phone")
    if phone is not None:
        phone = normalize_phone(phone)
    if is_return:
        orig = _text(payload.get("original_external_id"), "original_external_id")
        orig_src = _text(payload.get("original_source"), "original_source", 32, required=False)
    else:
        orig = orig_src = None
        if payload.get("original_external_id") is not None:
            raise InvalidInput("original_external_id belongs to returns", code="unknown_field")
    return OrderIn(
        ext or "", at, amount, _text(payload.get("store_code"), "store_code", 32, required=False),
        member_id, phone, channel, tuple(lines), orig, orig_src,
    )


def payload_hash(payload: Any) -> str:
    """A stable fingerprint of a payload, to tell a replay from a different order with the same id."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _replay(s: Session, source: str, external_id: str, digest: str) -> dict[str, Any] | None:
    prior = s.connection().execute(_PRIOR, {"source": source, "external_id": external_id}).one_or_none()
    if prior is None:
        return None
    if prior.payload_hash != digest:
        raise Conflict("This order id was already posted with other content.", external_id=external_id)
    return {**prior.result, "replayed": True}


def _member_for(s: Session, o: OrderIn) -> Member | None:
    """The member the order names, locked (closed members too: their orders are still recorded)."""
    if o.member_id is not None:
        try:
            return lock_member(s, o.member_id, allow_closed=True)
        except NotFound:
            raise InvalidInput("Unknown member_id.", code="unknown_member", field="member_id") from None
    if o.phone is not None:
        mid = s.execute(select(Member.id).where(Member.phone == o.phone)).scalar()
        return lock_member(s, mid, allow_closed=True) if mid is not None else None
    return None


def _store_id(s: Session, code: str | None) -> int | None:
    if code is None:
        return None
    sid = store_id_by_code(s, code)
    if sid is None:
        raise InvalidInput("Unknown store_code.", code="unknown_store", field="store_code")
    return sid


def points_for(amount_fen: int, multiplier: float) -> int:
    """Points a purchase earns: amount × base rate × tier multiplier, rounded down."""
    rate = Decimal(str(settings().points_per_yuan)) * Decimal(str(multiplier))
    return int((Decimal(amount_fen) / 100 * rate).to_integral_value(ROUND_FLOOR))


def _check_source(source: Any) -> None:
    if not isinstance(source, str) or not source.strip() or len(source) > 32:
        raise InvalidInput("The source (till or shop) must be named, in at most 32 characters.",
                           code="invalid_source", field="source")


def _orders_of(s: Session, member_id: int) -> int:
    """How many orders (returns not counted) a member has placed, this one included."""
    return s.execute(
        select(func.count()).select_from(Order).where(Order.member_id == member_id, Order.kind == "order")
    ).scalar_one()


def record_order(s: Session, source: str, payload: Any, now: datetime | None = None) -> dict[str, Any]:
    """Record a purchase and earn its points (if a member bought); idempotent per (source, id)."""
    _check_source(source)
    at = now_or(now)
    o = parse(payload, at)
    digest = payload_hash(payload)
    prior = _replay(s, source, o.external_id, digest)
    if prior is not None:
        return prior
    sid = _store_id(s, o.store_code)
    member = _member_for(s, o)
    # A twin request may have committed while we waited for the member's lock. Not on SQLite:
    # BEGIN IMMEDIATE took the database's write lock before the first look.
    if member is not None and s.get_bind().dialect.name != "sqlite":
        prior = _replay(s, source, o.external_id, digest)
        if prior is not None:
            return prior
    # Core inserts: nothing below needs the order as an object, and the unit of work costs more.
    order_id = s.connection().execute(_NEW_ORDER, dict(
        source=source, external_id=o.external_id, kind="order", original_id=None,
        member_id=member.id if member else None, store_id=sid, channel=o.channel, placed_at=o.placed_at,
        amount_fen=o.amount_fen, points=0, payload_hash=digest, result={}, created_at=at,
    )).inserted_primary_key[0]
    _add_lines(s, order_id, o.lines)
    result: dict[str, Any] = {"order_id": order_id, "external_id": o.external_id, "member_id": None,
                              "points_earned": 0, "balance": None, "tier": None}
    earned = 0
    if member is not None and member.status == "active":
        tier = settings().tier(member.tier)
        earned = points_for(o.amount_fen, tier.multiplier)
        # Expire what is due first, so that the balance the till shows is the live one.
        points.expire_member(s, member.id, at)
        # The key names the order just inserted: it cannot exist yet, so it is not looked up.
        points.credit_fresh(
            s, member.id, earned, kind="earn", at=o.placed_at, growth=o.amount_fen // 100,
            order_id=order_id, key=f"order:{order_id}", reason=f"order {o.external_id}",
        )
        tiers.upgrade_if_due(s, member, o.placed_at)
        # Counting the member's orders is only worth it while a referral waits for the first one.
        if referrals.awaits_first_order(s, member.id) and _orders_of(s, member.id) == 1:
            referrals.on_first_order(s, member.id, o.placed_at)
        # After the referral: the friend's own reward may have landed on this balance too.
        result.update(member_id=member.id, points_earned=earned,
                      balance=points.current_balance(s, member.id), tier=member.tier)
    s.connection().execute(_SETTLE, {"order_id": order_id, "earned": earned, "outcome": result})
    return {**result, "replayed": False}


def _add_lines(s: Session, order_id: int, lines: tuple[LineIn, ...]) -> None:
    if not lines:
        return
    # Product ids by SKU, kept for the transaction: a demo batch or a file import sees the
    # same few hundred SKUs again and again. Unknown SKUs are asked each time.
    known = txn_cache(s, "loyalty.product_ids")
    missing = {ln.sku for ln in lines} - known.keys()
    if missing:
        known.update(s.execute(_PRODUCT_IDS, {"skus": sorted(missing)}).all())
    s.connection().execute(_NEW_LINES, [
        dict(order_id=order_id, product_id=known.get(ln.sku), sku=ln.sku, qty=ln.qty,
             unit_price_fen=ln.unit_price_fen)
        for ln in lines
    ])


def record_return(s: Session, source: str, payload: Any, now: datetime | None = None) -> dict[str, Any]:
    """Record a return and claw back what the returned part of the order earned.

    Partial returns take back points in proportion; all returns of an order
    together never take back more than it earned nor more than it cost.
    """
    _check_source(source)
    at = now_or(now)
    o = parse(payload, at, is_return=True)
    digest = payload_hash(payload)
    prior = _replay(s, source, o.external_id, digest)
    if prior is not None:
        return prior
    orig = s.execute(
        select(Order).where(
            Order.source == (o.original_source or source),
            Order.external_id == o.original_external_id,
            Order.kind == "order",
        )
        # Lock the order: concurrent returns of it are checked against its amount one at a
        # time, even when no member (whose lock would serialise them) bought it.
        .with_for_update()
    ).scalar_one_or_none()
    if orig is None:
        raise NotFound("The original order is unknown.", code="unknown_order", field="original_external_id")
    if orig.member_id is not None:
        lock_member(s, orig.member_id, allow_closed=True)
    # A twin request may have committed while we waited for the locks.
    prior = _replay(s, source, o.external_id, digest)
    if prior is not None:
        return prior
    # int(): PostgreSQL sums BIGINT columns as NUMERIC (Decimal), which JSON cannot hold.
    returned_before = int(s.execute(
        select(func.coalesce(func.sum(Order.amount_fen), 0)).where(Order.original_id == orig.id)
    ).scalar_one())
    if returned_before + o.amount_fen > orig.amount_fen:
        raise InvalidInput(
            "The returns would exceed the order amount.", code="return_exceeds_order",
            returnable=fen_to_yuan(orig.amount_fen - returned_before),
        )
    ret = Order(
        source=source, external_id=o.external_id, kind="return", original_id=orig.id,
        member_id=orig.member_id, store_id=_store_id(s, o.store_code) or orig.store_id,
        channel=o.channel, placed_at=o.placed_at, amount_fen=o.amount_fen, payload_hash=digest,
        result={}, created_at=at,
    )
    s.add(ret)
    s.flush()
    _add_lines(s, ret.id, o.lines)
    result: dict[str, Any] = {"return_id": ret.id, "external_id": o.external_id, "member_id": orig.member_id,
                              "points_clawed_back": 0, "shortfall": 0, "balance": None}
    if orig.member_id is not None and orig.points:
        clawed_before = int(s.execute(
            select(func.coalesce(func.sum(Order.points), 0)).where(Order.original_id == orig.id)
        ).scalar_one())
        target = orig.points * (returned_before + o.amount_fen) // orig.amount_fen if orig.amount_fen else 0
        due = max(0, target - clawed_before)
        growth_target = (returned_before + o.amount_fen) // 100
        growth = -(growth_target - returned_before // 100)
        mv = points.clawback(s, orig.member_id, due, order_id=orig.id, at=o.placed_at,
                             growth=growth, key=f"return:{ret.id}")
        ret.points = due
        result.update(points_clawed_back=-mv.delta, shortfall=mv.shortfall, balance=mv.balance)
    ret.result = result
    s.flush()
    return {**result, "replayed": False}


def recent_orders(s: Session, member_id: int, limit: int = 5) -> list[dict[str, Any]]:
    """The member's latest orders with their lines, newest first (for the console and the bot)."""
    rows = s.execute(
        select(Order).where(Order.member_id == member_id).order_by(Order.placed_at.desc()).limit(limit)
    ).scalars()
    out = []
    for o in rows:
        names = s.execute(
            select(OrderLine.sku, OrderLine.qty, Product.name_zh, Product.name_en)
            .outerjoin(Product, Product.id == OrderLine.product_id)
            .where(OrderLine.order_id == o.id)
        ).all()
        out.append({
            "external_id": o.external_id, "kind": o.kind, "placed_at": o.placed_at,
            "amount": fen_to_yuan(o.amount_fen), "points": o.points,
            "lines": [{"sku": r[0], "qty": r[1], "name_zh": r[2], "name_en": r[3]} for r in names],
        })
    return out
