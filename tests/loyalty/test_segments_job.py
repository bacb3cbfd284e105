"""The segment job against a real (SQLite) database: every member scored once, stable, targetable."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.catalogue.models import Product
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon
from loyalty.members.models import MemberSegment
from loyalty.membership import service as membership
from loyalty.segments.job import member_segment, recompute_all
from loyalty.segments.rfm import Rules
from tests.loyalty.corekit import T0, buy, campaign, days, join, many_members


def rows() -> list[tuple[Any, ...]]:
    with db.session(readonly=True) as s:
        return [
            (r.member_id, r.recency, r.frequency, r.monetary, r.segment, r.lifecycle, tuple(r.tags), r.as_of)
            for r in s.execute(select(MemberSegment).order_by(MemberSegment.member_id)).scalars()
        ]


def setup_members() -> dict[str, int]:
    """Five buyers with known RFM ranks, one member without orders, one who joined today."""
    db.run(lambda s: s.add_all([
        Product(sku="SNACK", name_zh="零食", name_en="Snack", category="snacks", price_fen=1000, stock=9),
        Product(sku="CREAM", name_zh="面霜", name_en="Cream", category="skincare", price_fen=1000, stock=9),
    ]))
    old = many_members(6, now=T0 - days(400))
    champion, steady, middling, slipping, gone, idle = old
    plan = {  # member: (number of orders, days ago of the last one, yuan per order)
        champion: (10, 2, "100.00"), steady: (6, 10, "20.00"), middling: (3, 20, "50.00"),
        slipping: (8, 150, "90.00"), gone: (1, 300, "5.00"),
    }
    for m, (n, last, amount) in plan.items():
        for k in range(n):
            sku = "SNACK" if m != champion or k % 5 else "CREAM"
            buy(m, amount, T0 - days(last + 7 * k),
                lines=[{"sku": sku, "qty": 1, "unit_price": amount}])
    newbie = join(now=T0 - days(3))
    return {"champion": champion, "steady": steady, "middling": middling, "slipping": slipping,
            "gone": gone, "idle": idle, "newbie": newbie}


def test_every_member_gets_exactly_one_known_segment(sqlite_engine: Engine) -> None:
    m = setup_members()
    run = db.run(recompute_all, now=T0)
    assert run.members == 7 and sum(run.by_segment.values()) == 7
    got = {r[0]: r for r in rows()}
    assert set(got) == set(m.values())
    assert got[m["champion"]][1:5] == (5, 5, 5, "champions")
    assert got[m["steady"]][1:5] == (4, 3, 2, "potential")
    assert got[m["slipping"]][1:5] == (2, 4, 4, "at_risk")
    assert got[m["gone"]][1:5] == (1, 1, 1, "lost")
    assert got[m["idle"]][1:6] == (0, 0, 0, "prospect", "churned")
    assert got[m["newbie"]][4:6] == ("new", "new")
    # 8 of 10 orders were snacks, and none used a coupon.
    assert got[m["champion"]][6] == ("fav:snacks", "full_price")
    view = db.run(member_segment, m["champion"])
    assert view is not None and (view.segment_zh, view.segment_en) == ("重要价值会员", "Champions")
    assert view.lifecycle == "active" and view.lifecycle_zh == "活跃"
    assert db.run(member_segment, 999_999) is None


def test_recomputing_with_the_same_data_changes_nothing(sqlite_engine: Engine) -> None:
    setup_members()
    db.run(recompute_all, now=T0)
    first = rows()
    db.run(recompute_all, now=T0)
    assert rows() == first


def test_lifecycle_days_come_from_the_rules_and_closed_members_drop_out(sqlite_engine: Engine) -> None:
    m = setup_members()
    db.run(recompute_all, now=T0, rules=Rules(active_days=5, churn_days=100))
    got = {r[0]: r[5] for r in rows()}
    assert (got[m["champion"]], got[m["steady"]], got[m["slipping"]]) == ("active", "dormant", "churned")
    db.run(membership.close_account, m["gone"], actor="test", now=T0)
    db.run(recompute_all, now=T0)
    assert m["gone"] not in {r[0] for r in rows()}


def test_coupon_use_marks_deal_seekers(sqlite_engine: Engine) -> None:
    m = setup_members()
    campaign("DEAL", kind="threshold", threshold_fen=0, discount_fen=100, per_member_limit=10)
    for k in range(3):
        db.run(coupons.grant, m["middling"], "DEAL", key=f"k{k}", now=T0 - days(30))
    codes = db.run(lambda s: list(s.execute(select(Coupon.code).where(Coupon.member_id == m["middling"])).scalars()))
    for n, code in enumerate(codes):
        db.run(coupons.redeem, code, order_ref=f"R{n}", order_amount_fen=5000, now=T0 - days(25))
    db.run(recompute_all, now=T0)
    assert "deal_seeker" in {r[0]: r[6] for r in rows()}[m["middling"]]


def test_campaigns_can_target_a_segment(sqlite_engine: Engine) -> None:
    m = setup_members()
    db.run(recompute_all, now=T0)
    campaign("VIP", target_segment="champions", claim_start=T0 - days(1), claim_end=T0 + days(10))

    def claimable(member_id: int) -> tuple[bool, Any]:
        offer = next(o for o in db.run(coupons.offers, member_id, now=T0) if o.campaign.code == "VIP")
        return offer.claimable, offer.reason

    assert claimable(m["champion"]) == (True, None)
    assert claimable(m["gone"]) == (False, "not_in_segment")
