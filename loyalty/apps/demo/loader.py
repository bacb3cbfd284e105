"""Loading a plan through the real services with ``now=`` set to the simulated time; the report and digest."""

from __future__ import annotations

import hashlib
import random
import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.apps.demo.campaigns import FLASH_CODE, FLASH_KEEP, campaigns
from loyalty.apps.demo.plan import Event, OrderPlan, Person, Plan, make_plan
from loyalty.apps.demo.reference import STORES
from loyalty.catalogue.models import Product, Store
from loyalty.common import fen_to_yuan, yuan_to_fen
from loyalty.config import settings
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.orders.models import Order, OrderLine
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot
from loyalty.referrals.models import Referral
from loyalty.tiers import service as tiers
from loyalty.tiers.models import TierChange


@dataclass
class _Held:
    """A coupon a simulated member holds and may use at a later purchase."""

    code: str
    kind: str
    threshold_fen: int
    discount_fen: int
    percent_off: int
    gift_sku: str | None
    valid_from: datetime
    valid_until: datetime

    @classmethod
    def of(cls, v: coupons.CouponView) -> _Held:
        c = v.campaign
        return cls(v.code, c.kind, yuan_to_fen(c.threshold), yuan_to_fen(c.discount), c.percent_off, c.gift_sku,
                   v.valid_from, v.valid_until)

    def value(self, subtotal: int, prices: dict[str, int]) -> int:
        """What the coupon is worth on this basket, in fen."""
        if self.kind == "threshold":
            return min(self.discount_fen, subtotal)
        if self.kind == "percent":
            return subtotal * self.percent_off // 100
        return prices.get(self.gift_sku or "", 0)


@dataclass
class SeedReport:
    """What a seed run wrote, and how long it took."""

    stores: int
    products: int
    members: int
    orders: int
    returns: int
    order_lines: int
    referrals: int
    coupons_issued: int
    coupons_redeemed: int
    points_earned: int
    points_expired: int
    tier_changes: int
    tiers: dict[str, int]
    plan_seconds: float = 0.0
    load_seconds: float = 0.0


class _Loader:
    """Replays a plan through the services; keeps only what later events need to know."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ids: dict[int, int] = {}  # person index -> member id
        self.codes: dict[int, str] = {}  # person index -> referral code
        self.held: dict[int, list[_Held]] = defaultdict(list)
        self.closed: set[int] = set()
        self.paid: dict[str, int] = {}  # order external id -> amount paid (fen), for returns
        self.prices = {p.sku: p.price_fen for p in plan.products}
        self.gift_of: dict[str, str | None] = {}  # campaign code -> gift SKU

    def setup(self, s: Session) -> None:
        """Stores, products and campaigns."""
        s.add_all(Store(code=x.code, name_zh=x.name_zh, name_en=x.name_en, city=x.city, active=True) for x in STORES)
        s.add_all(
            Product(sku=p.sku, name_zh=p.name_zh, name_en=p.name_en, category=p.category, price_fen=p.price_fen,
                    stock=p.stock, active=p.active)
            for p in self.plan.products
        )
        s.flush()
        for fields in campaigns(self.plan):
            coupons.create_campaign(s, actor="demo", **fields)
            self.gift_of[fields["code"]] = fields.get("gift_sku")

    def batch(self, s: Session, events: list[Event]) -> None:
        for e in events:
            if e.who >= 0 and (e.who in self.closed or (e.kind != "signup" and e.who not in self.ids)):
                continue
            getattr(self, "_" + e.kind)(s, e)

    def _signup(self, s: Session, e: Event) -> None:
        p: Person = e.data
        code = self.codes.get(p.referrer) if p.referrer is not None and p.referrer not in self.closed else None
        res = membership.signup(
            s, phone=p.phone, consent=True, name=p.name, birthday=p.birthday, store_code=p.store,
            referral_code=code, channel=p.channel, external_id=p.external_id, now=p.joined,
        )
        self.ids[p.idx] = res.card.id
        self.codes[p.idx] = res.card.referral_code
        if res.welcome_coupon:
            self._remember(s, p.idx, res.welcome_coupon, p.joined)

    def _remember(self, s: Session, who: int, code: str, at: datetime) -> None:
        for v in coupons.member_coupons(s, self.ids[who], now=at):
            if v.code == code:
                self.held[who].append(_Held.of(v))

    def _order(self, s: Session, e: Event) -> None:
        o: OrderPlan = e.data
        mid = self.ids[o.who]
        rng = random.Random(f"demo:{self.plan.seed}:{o.external_id}")
        lines = [(sku, qty, self.prices[sku]) for sku, qty in o.items]
        subtotal = sum(q * p for _, q, p in lines)
        if rng.random() < 0.12:
            self._claim(s, o, mid, rng)
        discount = 0
        used = self._use_coupon(o, subtotal, rng)
        if used is not None:
            r = coupons.redeem(s, used.code, order_ref=o.external_id, order_amount_fen=subtotal,
                               store_code=o.store, now=o.at)
            discount = yuan_to_fen(r.discount)
            if r.gift_sku:
                lines.append((r.gift_sku, 1, 0))
        amount = subtotal - discount
        payload: dict[str, Any] = {
            "external_id": o.external_id, "placed_at": o.at.isoformat(), "amount": fen_to_yuan(amount),
            "member_id": mid, "channel": "online" if o.online else "pos",
            "lines": [{"sku": sku, "qty": q, "unit_price": fen_to_yuan(p)} for sku, q, p in lines],
        }
        if o.store:
            payload["store_code"] = o.store
        orders.record_order(s, o.source, payload, now=o.at)
        self.paid[o.external_id] = amount

    def _claim(self, s: Session, o: OrderPlan, mid: int, rng: random.Random) -> None:
        """At the till or in the shop, the member claims one of the offers open now."""
        open_now = [x.campaign for x in coupons.offers(s, mid, now=o.at) if x.claimable]
        flash = [c for c in open_now if c.code == FLASH_CODE and (c.left or 0) > FLASH_KEEP]
        exchange = [c for c in open_now if c.points_cost]
        free = [c for c in open_now if not c.points_cost and c.code != FLASH_CODE]
        if flash and rng.random() < 0.6:
            pick = flash[0]
        elif exchange and rng.random() < 0.4:
            pick = rng.choice(exchange)
        elif free:
            pick = rng.choice(free)
        else:
            return
        got = coupons.claim(s, mid, pick.code, key=o.external_id, now=o.at)
        self.held[o.who].append(_Held.of(got.coupon))

    def _use_coupon(self, o: OrderPlan, subtotal: int, rng: random.Random) -> _Held | None:
        held = [h for h in self.held[o.who] if o.at < h.valid_until]
        self.held[o.who] = held
        usable = [h for h in held if h.valid_from <= o.at and subtotal >= h.threshold_fen]
        if not usable or rng.random() > 0.6:
            return None
        # Ties go to the coupon held longest (never to the code: codes are random, the plan is not).
        best = max(usable, key=lambda h: h.value(subtotal, self.prices))
        held.remove(best)
        return best

    def _return(self, s: Session, e: Event) -> None:
        o, sku, qty, price = e.data
        paid = self.paid.pop(o.external_id, 0)
        amount = min(qty * price, paid)
        if amount <= 0:
            return
        payload: dict[str, Any] = {
            "external_id": f"{o.external_id}-R", "placed_at": e.at.isoformat(), "amount": fen_to_yuan(amount),
            "original_external_id": o.external_id, "channel": "online" if o.online else "pos",
            "lines": [{"sku": sku, "qty": qty, "unit_price": fen_to_yuan(price)}],
        }
        if o.store:
            payload["store_code"] = o.store
        orders.record_return(s, o.source, payload, now=e.at)

    def _birthday(self, s: Session, e: Event) -> None:
        # As gifts.grant_birthday does (same request key, so the live job never grants twice),
        # but at the simulated time: grant_birthday itself always uses the clock.
        m = s.get(Member, self.ids[e.who])
        assert m is not None
        campaign = settings().tier(m.tier).birthday_coupon
        if campaign:
            got = coupons.grant(s, m.id, campaign, key=f"birthday:{e.data}", now=e.at)
            self.held[e.who].append(_Held.of(got.coupon))

    def _opt_out(self, s: Session, e: Event) -> None:
        members.set_marketing(s, self.ids[e.who], False, actor="member", now=e.at)

    def _close(self, s: Session, e: Event) -> None:
        membership.close_account(s, self.ids[e.who], actor="member", now=e.at)
        self.closed.add(e.who)
        self.held.pop(e.who, None)

    def _expire(self, s: Session, e: Event) -> None:
        for mid in points.members_with_due_lots(s, e.at):
            points.expire_due_for(s, mid, e.at)

    def _review(self, s: Session, e: Event) -> None:
        for mid in tiers.members_due_for_review(s, e.at):
            tiers.review_member(s, mid, e.at)


def is_empty(s: Session) -> bool:
    """Whether the database has no stores yet (the demo seeds only an empty database)."""
    return s.execute(select(Store.id).limit(1)).first() is None


def load(plan: Plan, *, batch: int = 500, progress: Callable[[int], None] | None = None) -> SeedReport:
    """Write a plan through the services, ``batch`` events per transaction, then report what is there.

    The database must be migrated and empty (see :func:`is_empty`).
    """
    t0 = _time.perf_counter()
    loader = _Loader(plan)

    def setup(s: Session) -> None:
        if not is_empty(s):
            raise RuntimeError("the database already has stores; the demo seeds only an empty database")
        loader.setup(s)

    # No retries: a batch is not safe to re-run against the loader's memory, and nothing else writes.
    db.run(setup, attempts=1)
    for i in range(0, len(plan.events), batch):
        chunk = plan.events[i : i + batch]
        db.run(loader.batch, chunk, attempts=1)
        if progress is not None:
            progress(len(chunk))
    report = db.run(_report, readonly=True)
    report.load_seconds = _time.perf_counter() - t0
    return report


def seed_demo(
    n_members: int = 2000,
    seed: int = 42,
    until: date | None = None,
    days: int = 450,
    *,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Plan and load the demo in one call (the CLI splits the two to size its progress bar)."""
    t0 = _time.perf_counter()
    plan = make_plan(n_members, seed, until, days)
    planned = _time.perf_counter() - t0
    report = load(plan, progress=progress)
    report.plan_seconds = planned
    return report


def _count(s: Session, q: Any) -> int:
    return int(s.execute(q).scalar_one() or 0)


def _report(s: Session) -> SeedReport:
    n = select(func.count())
    return SeedReport(
        stores=_count(s, n.select_from(Store)),
        products=_count(s, n.select_from(Product)),
        members=_count(s, n.select_from(Member)),
        orders=_count(s, n.select_from(Order).where(Order.kind == "order")),
        returns=_count(s, n.select_from(Order).where(Order.kind == "return")),
        order_lines=_count(s, n.select_from(OrderLine)),
        referrals=_count(s, n.select_from(Referral)),
        coupons_issued=_count(s, n.select_from(Coupon)),
        coupons_redeemed=_count(s, n.select_from(Coupon).where(Coupon.status == "redeemed")),
        points_earned=_count(s, select(func.sum(LedgerEntry.delta)).where(LedgerEntry.kind == "earn")),
        points_expired=-_count(s, select(func.sum(LedgerEntry.delta)).where(LedgerEntry.kind == "expire")),
        tier_changes=_count(s, n.select_from(TierChange)),
        tiers=dict(s.execute(select(Member.tier, func.count()).where(Member.status == "active")
                             .group_by(Member.tier).order_by(Member.tier)).all()),
    )


# What the digest covers: everything the plan decides. Left out on purpose: referral and
# coupon codes (drawn by the services from ``secrets``) and wall-clock columns (audit times,
# campaign creation).
_DIGEST: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (Store, ("code", "name_zh", "name_en", "city", "active")),
    (Product, ("sku", "name_zh", "name_en", "category", "price_fen", "stock", "active")),
    (CouponCampaign, ("code", "kind", "threshold_fen", "discount_fen", "percent_off", "gift_sku", "total_stock",
                      "issued", "claim_start", "claim_end", "valid_until", "valid_days", "points_cost", "min_tier",
                      "audience")),
    (Member, ("id", "phone", "name", "birthday", "referred_by_id", "store_id", "join_channel", "tier",
              "tier_reviewed_at", "points_balance", "marketing_opt_in", "status", "created_at", "closed_at")),
    (Order, ("id", "source", "external_id", "kind", "original_id", "member_id", "store_id", "channel", "placed_at",
             "amount_fen", "points")),
    (OrderLine, ("order_id", "sku", "qty", "unit_price_fen")),
    (LedgerEntry, ("member_id", "kind", "delta", "balance_after", "growth", "shortfall", "order_id", "idem_key",
                   "created_at")),
    (PointsLot, ("member_id", "entry_id", "amount", "remaining", "earned_at", "expires_at")),
    (TierChange, ("member_id", "from_tier", "to_tier", "reason", "growth", "changed_at")),
    (Coupon, ("campaign_id", "member_id", "request_key", "status", "claimed_at", "valid_from", "valid_until",
              "points_spent", "redeemed_at", "redeemed_ref")),
    (Referral, ("referrer_id", "referee_id", "status", "created_at", "rewarded_at")),
)


def _rows(s: Session) -> Iterator[str]:
    for model, cols in _DIGEST:
        yield model.__tablename__
        q = select(*(getattr(model, c) for c in cols)).order_by(model.__table__.primary_key.columns.values()[0])
        for row in s.execute(q):
            yield "|".join(map(str, row))


def digest(s: Session) -> str:
    """A SHA-256 over the seeded data that the plan determines; equal seeds give equal digests."""
    h = hashlib.sha256()
    for line in _rows(s):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
