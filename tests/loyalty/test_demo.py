"""The demo generator: its catalogue and plan (pure Python), and a small seeded database."""

from __future__ import annotations

import re
import shutil
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from loyalty import config, db
from loyalty.apps import cli, demo
from loyalty.catalogue.models import Product, Store
from loyalty.config import SHANGHAI
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.members.models import Member
from loyalty.orders.models import Order, OrderLine
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry
from loyalty.referrals.models import Referral
from loyalty.tiers import service as tiers

UNTIL = date(2026, 3, 1)
CJK = re.compile(r"[\u4e00-\u9fff]")


# --- catalogue and plan (no database) ----------------------------------------------------------


def test_catalogue_is_large_bilingual_and_has_gaps() -> None:
    products = demo.catalogue(42)
    assert len(products) >= 300
    assert len({p.sku for p in products}) == len(products)
    cats = Counter(p.category for p in products)
    assert len(cats) >= 8 and set(cats) <= set(demo.CATEGORIES)
    assert all(re.fullmatch(r"[a-z_]+", c) for c in demo.CATEGORIES)
    assert all(CJK.search(zh) and not CJK.search(en) for zh, en in demo.CATEGORIES.values())
    for p in products:
        assert CJK.search(p.name_zh) and p.name_en and not CJK.search(p.name_en), p
        assert p.price_fen > 0
    assert 0 < sum(p.stock == 0 for p in products) < len(products) // 10
    assert 0 < sum(not p.active for p in products) < len(products) // 10
    tote, gift_set = demo.gift_skus(products)
    for sku in (tote, gift_set):  # given away by campaigns, so always available
        p = next(p for p in products if p.sku == sku)
        assert p.active and p.stock > 0


@pytest.fixture(scope="module")
def plan() -> demo.Plan:
    return demo.make_plan(400, 11, UNTIL)


def test_plan_is_deterministic(plan: demo.Plan) -> None:
    again = demo.make_plan(400, 11, UNTIL)

    def shape(p: demo.Plan) -> list[tuple]:
        return [(e.at, e.kind, e.who, e.data.external_id if e.kind == "order" else None) for e in p.events]

    assert shape(again) == shape(plan)
    assert shape(demo.make_plan(400, 12, UNTIL)) != shape(plan)


def test_plan_people_have_lifecycles_referrals_and_leap_birthdays(plan: demo.Plan) -> None:
    people = plan.people
    assert len({p.phone for p in people}) == len(people)
    lifecycles = Counter(p.lifecycle for p in people)
    assert {"active", "dormant", "churned", "one_off", "never"} <= set(lifecycles)
    assert lifecycles["active"] > len(people) / 2
    assert sum((p.birthday.month, p.birthday.day) == (2, 29) for p in people if p.birthday) >= 2
    referred = [p for p in people if p.referrer is not None]
    assert referred and all(people[p.referrer].joined < p.joined for p in referred)
    assert {p.home for p in people} == {s.code for s in demo.STORES}
    assert len({s.city for s in demo.STORES}) == 3


def _purchases(plan: demo.Plan) -> list[tuple[int, date, str, int, bool]]:
    out = []
    for e in plan.events:
        if e.kind == "order":
            for sku, qty in e.data.items:
                out.append((e.who, e.at.astimezone(SHANGHAI).date(), sku, qty, e.data.online))
    return out


def test_consumables_come_back_at_a_personal_cadence(plan: demo.Plan) -> None:
    by_sku = {p.sku: p for p in plan.products}
    days: dict[tuple[int, str], list[date]] = defaultdict(list)
    for who, d, sku, _, _ in _purchases(plan):
        days[(who, sku)].append(d)
    gaps: dict[int, list[float]] = defaultdict(list)  # product cadence -> members' median gaps
    for (_, sku), ds in days.items():
        if by_sku[sku].cadence and len(ds) >= 5:
            ds.sort()
            gaps[by_sku[sku].cadence].append(statistics.median((b - a).days for a, b in pairwise(ds)))
    # Weekly milk comes back within about two weeks (some stock up); monthly diapers about monthly.
    assert gaps[7] and statistics.median(gaps[7]) <= 14
    assert gaps[30] and 20 <= statistics.median(gaps[30]) <= 45


def test_orders_follow_the_seasons(plan: demo.Plan) -> None:
    cats = {p.sku: p.category for p in plan.products}
    sf = demo.SPRING_FESTIVAL[2026]

    def share(category: str, when) -> float:  # type: ignore[no-untyped-def]
        items = [(cats[sku], qty) for _, d, sku, qty, _ in _purchases(plan) if when(d)]
        return sum(q for c, q in items if c == category) / max(1, sum(q for _, q in items))

    before_sf = share("gifts", lambda d: sf - timedelta(days=25) <= d < sf)
    spring = share("gifts", lambda d: d.month in (3, 4) and d.year == 2025)
    assert before_sf > 2 * spring
    assert share("drinks", lambda d: d.month in (7, 8)) > 1.3 * share("drinks", lambda d: d.month in (12, 1))
    online = [(d, o) for _, d, _, _, o in _purchases(plan)]
    d11 = [o for d, o in online if d.month == 11 and d.day <= 11]
    october = [o for d, o in online if d.month == 10]
    assert sum(d11) / len(d11) > sum(october) / len(october)


# --- a seeded database -------------------------------------------------------------------------


@dataclass
class Seeded:
    engine: Engine
    plan: demo.Plan
    report: demo.SeedReport


def _fresh(template: str, folder: Path) -> Engine:
    path = folder / "demo.db"
    shutil.copy(template, path)
    return db.make_engine(f"sqlite:///{path}")


@pytest.fixture(scope="module")
def seeded(sqlite_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    config.use(config.Settings())
    e = _fresh(sqlite_template, tmp_path_factory.mktemp("demo"))
    db.configure(e)
    p = demo.make_plan(40, 5, UNTIL)
    yield Seeded(e, p, demo.load(p))
    e.dispose()
    config.use(None)


@pytest.fixture
def demo_db(seeded: Seeded) -> Seeded:
    db.configure(seeded.engine)
    return seeded


def _scalar(q):  # type: ignore[no-untyped-def]
    return db.run(lambda s: s.execute(q).scalar_one(), readonly=True)


def test_seeded_counts_and_catalogue(demo_db: Seeded) -> None:
    r = demo_db.report
    assert (r.stores, r.members, r.products) == (5, 40, len(demo_db.plan.products))
    assert _scalar(select(func.count(func.distinct(Store.city)))) == 3
    assert _scalar(select(func.count(func.distinct(Product.category)))) >= 8
    assert _scalar(select(func.count()).select_from(Product).where(
        (Product.name_zh == "") | (Product.name_en == ""))) == 0
    assert r.orders == demo_db.plan.orders and r.order_lines > r.orders
    assert r.returns > 0 and r.referrals > 0 and r.coupons_redeemed > 0 and r.points_expired > 0


def test_most_members_bought_and_orders_sit_in_the_history(demo_db: Seeded) -> None:
    buyers = _scalar(select(func.count(func.distinct(Order.member_id))).where(Order.kind == "order"))
    assert buyers >= 0.85 * 40
    first, last = db.run(lambda s: s.execute(select(func.min(Order.placed_at), func.max(Order.placed_at))).one(),
                         readonly=True)
    assert demo_db.plan.start <= first and last < demo_db.plan.end
    # Every sold SKU is in the catalogue.
    unknown = _scalar(select(func.count()).select_from(OrderLine).where(OrderLine.product_id.is_(None)))
    assert unknown == 0


def test_points_and_tiers_are_consistent_for_every_member(demo_db: Seeded) -> None:
    def check(s) -> list[tuple]:  # type: ignore[no-untyped-def]
        bad = []
        for m in s.execute(select(Member)).scalars():
            totals = (m.points_balance, points.ledger_total(s, m.id), points.lots_total(s, m.id))
            if len(set(totals)) != 1:
                bad.append(("points", m.id, totals))
            if m.status == "active" and tiers.rebuild(s, m.id) != m.tier:
                bad.append(("tier", m.id, m.tier))
        return bad

    assert db.run(check, readonly=True) == []
    # The expiry job ran at the end of the history: nothing is left due.
    assert db.run(points.members_with_due_lots, demo_db.plan.end, readonly=True) == []
    assert _scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "expire")) > 0


def test_campaigns_cover_every_audience_and_rule(demo_db: Seeded) -> None:
    rows = db.run(lambda s: {c.code: c for c in s.execute(select(CouponCampaign)).scalars()}, readonly=True)
    assert rows["WELCOME"].audience == "welcome"
    for t in config.settings().tiers:
        if t.birthday_coupon:
            assert rows[t.birthday_coupon].audience == "birthday"
    public = [c for c in rows.values() if c.audience == "public"]
    assert {c.kind for c in public} == {"threshold", "percent", "gift"}
    assert any(c.points_cost for c in public) and any(c.min_tier == "gold" for c in public)
    flash = rows[demo.FLASH_CODE]
    assert flash.total_stock is not None and flash.total_stock - flash.issued >= 3
    # Welcome coupons went out at signup and some were used at a till.
    welcome = _scalar(select(func.count()).select_from(Coupon).where(Coupon.campaign_id == rows["WELCOME"].id))
    assert welcome == 40
    assert _scalar(select(func.count()).select_from(Referral).where(Referral.status == "rewarded")) > 0


def test_the_live_jobs_find_nothing_left_to_do(demo_db: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    end = demo_db.plan.end.isoformat()
    assert cli.main(["points", "expire", "--now", end]) == 0
    assert "expired 0 points" in capsys.readouterr().out
    assert cli.main(["tiers", "review", "--now", end]) == 0
    assert "reviewed 0 members" in capsys.readouterr().out
    assert cli.main(["seed", "--if-empty"]) == 0


def test_same_seed_same_data(sqlite_template: str, tmp_path: Path) -> None:
    digests = []
    for i, seed in enumerate((8, 8, 9)):
        folder = tmp_path / str(i)
        folder.mkdir()
        e = _fresh(sqlite_template, folder)
        db.configure(e)
        demo.seed_demo(15, seed, UNTIL, days=120)
        digests.append(db.run(demo.digest, readonly=True))
        e.dispose()
    assert digests[0] == digests[1] != digests[2]
