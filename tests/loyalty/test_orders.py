"""Orders and returns from tills and the web shop: earn once, claw back in proportion, refuse junk."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from loyalty import db
from loyalty.catalogue.models import Product, Store
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.orders.models import Order, OrderLine
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot
from loyalty.tiers import service as tiers
from tests.loyalty.corekit import T0, buy, check_points, days, give_back, join, phone, refused_cleanly


def payload(**kw: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"external_id": "P-1", "placed_at": T0.isoformat(), "amount": "100.00"}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not None}


def test_points_are_earned_on_yuan_rounded_down(engine) -> None:
    m = join()
    res = buy(m, "128.99", ext="A")
    assert (res["points_earned"], res["balance"], res["tier"], res["replayed"]) == (128, 128, "normal", False)
    assert buy(m, "0.99", ext="B")["points_earned"] == 0
    assert check_points(m, T0) == 128


def test_a_till_finds_the_member_by_phone_in_any_format(engine) -> None:
    number = phone()
    m = join(phone=number)
    spaced = f"+86 {number[:3]}-{number[3:7]}-{number[7:]}"
    res = db.run(orders.record_order, "pos", payload(phone=spaced), now=T0)
    assert (res["member_id"], res["points_earned"]) == (m, 100)


def test_an_order_without_a_known_member_is_kept_without_points(engine) -> None:
    res = db.run(orders.record_order, "pos", payload(phone="13900000000"), now=T0)
    assert (res["member_id"], res["points_earned"], res["balance"]) == (None, 0, None)
    res = db.run(orders.record_order, "web", payload(external_id="W-1", channel="online"), now=T0)
    assert res["member_id"] is None
    with db.session(readonly=True) as s:
        assert [o.channel for o in s.execute(select(Order).order_by(Order.id)).scalars()] == ["pos", "online"]


def test_a_closed_account_earns_nothing(engine) -> None:
    m = join()
    db.run(membership.close_account, m, actor="member", now=T0)
    res = db.run(orders.record_order, "pos", payload(member_id=m), now=T0 + days(1))
    assert res["points_earned"] == 0
    assert check_points(m, T0 + days(1)) == 0


def test_the_same_id_from_two_sources_is_two_orders(engine) -> None:
    m = join()
    a = db.run(orders.record_order, "pos", payload(member_id=m), now=T0)
    b = db.run(orders.record_order, "web", payload(member_id=m), now=T0)
    assert a["order_id"] != b["order_id"] and not b["replayed"]
    assert check_points(m, T0) == 200


def test_the_same_id_with_other_content_is_a_conflict(engine) -> None:
    m = join()
    db.run(orders.record_order, "pos", payload(member_id=m), now=T0)
    assert refused_cleanly(orders.record_order, "pos", payload(member_id=m, amount="99.00"),
                           now=T0) == "idempotency_conflict"
    again = db.run(orders.record_order, "pos", payload(member_id=m), now=T0 + days(2))
    assert again["replayed"] and again["points_earned"] == 100
    assert check_points(m, T0) == 100


def test_lines_are_kept_and_linked_to_products(engine) -> None:
    with db.session() as s, s.begin():
        s.add(Product(sku="SKU-1", name_zh="面霜", name_en="Cream", category="skincare", price_fen=8800, stock=5))
        s.add(Store(code="SH01", name_zh="上海一店", name_en="Shanghai 1", city="上海"))
    m = join()
    lines = [{"sku": "SKU-1", "qty": 2, "unit_price": "88.00"}, {"sku": "GONE", "qty": 1, "unit_price": "12.5"}]
    db.run(orders.record_order, "pos", payload(member_id=m, amount="188.50", lines=lines, store_code="sh01"),
           now=T0)
    recent = db.run(orders.recent_orders, m, readonly=True)
    assert recent[0]["amount"] == "188.50" and recent[0]["points"] == 188
    assert sorted((ln["sku"], ln["qty"], ln["name_en"]) for ln in recent[0]["lines"]) == [
        ("GONE", 1, None), ("SKU-1", 2, "Cream")]
    with db.session(readonly=True) as s:
        assert sorted(s.execute(select(OrderLine.unit_price_fen)).scalars()) == [1250, 8800]
        assert s.execute(select(Order.store_id)).scalar_one() is not None


# --- returns ------------------------------------------------------------------------------


def test_partial_returns_claw_back_in_proportion_and_add_up_exactly(engine) -> None:
    m = join()
    assert buy(m, "99.99", ext="X")["points_earned"] == 99
    clawed = [give_back("X", amount, T0 + days(i + 1))["points_clawed_back"]
              for i, amount in enumerate(["25.00", "25.00", "49.99"])]
    assert clawed == [24, 25, 50]  # floor(99 × returned so far / 99.99) minus what was taken before
    assert check_points(m, T0 + days(4)) == 0
    # The growth of the order (99 yuan) is gone from the tier window too.
    with db.session(readonly=True) as s:
        assert tiers.growth_in_window(s, m, T0 + days(4)) == 0
    assert refused_cleanly(orders.record_return, "pos", {
        "external_id": "R-more", "placed_at": (T0 + days(5)).isoformat(), "amount": "0.01",
        "original_external_id": "X"}, now=T0 + days(5)) == "return_exceeds_order"


def test_a_return_takes_the_order_own_points_first(engine) -> None:
    m = join()
    buy(m, "100.00", T0, ext="OLD")
    buy(m, "50.00", T0 + days(1), ext="NEW")
    give_back("NEW", "50.00", T0 + days(2))
    with db.session(readonly=True) as s:
        left = s.execute(select(PointsLot.remaining).order_by(PointsLot.id)).scalars().all()
    assert left == [100, 0]


def test_a_return_after_spending_never_goes_below_zero_and_records_the_shortfall(engine) -> None:
    m = join()
    buy(m, "100.00", ext="X")
    db.run(points.spend, m, 80, key="gift", reason="gift", now=T0 + days(1))
    res = give_back("X", "100.00", T0 + days(2), ret="RX")
    assert (res["points_clawed_back"], res["shortfall"], res["balance"]) == (20, 80, 0)
    body = {"external_id": "RX", "placed_at": (T0 + days(2)).isoformat(), "amount": "100.00",
            "original_external_id": "X"}
    again = db.run(orders.record_return, "pos", body, now=T0 + days(3))
    assert again["replayed"] and again["points_clawed_back"] == 20
    with db.session(readonly=True) as s:
        e = s.execute(select(LedgerEntry).where(LedgerEntry.kind == "clawback")).scalar_one()
    assert (e.delta, e.shortfall, e.balance_after, e.growth) == (-20, 80, 0, -100)
    assert check_points(m, T0 + days(3)) == 0
    # Later earnings are the member's own: the shortfall is not taken from them.
    buy(m, "10.00", T0 + days(4))
    assert check_points(m, T0 + days(4)) == 10


def test_returns_of_anonymous_orders_and_unknown_originals(engine) -> None:
    buy(None, "50.00", ext="ANON")
    res = give_back("ANON", "20.00")
    assert (res["member_id"], res["points_clawed_back"]) == (None, 0)
    assert refused_cleanly(orders.record_return, "pos", {
        "external_id": "R-x", "placed_at": T0.isoformat(), "amount": "1.00",
        "original_external_id": "NOPE"}, now=T0) == "unknown_order"
    # A return names the order of its own source unless it says otherwise.
    assert refused_cleanly(orders.record_return, "web", {
        "external_id": "R-y", "placed_at": T0.isoformat(), "amount": "1.00",
        "original_external_id": "ANON"}, now=T0) == "unknown_order"
    ok = db.run(orders.record_return, "web", {
        "external_id": "R-y", "placed_at": T0.isoformat(), "amount": "1.00",
        "original_external_id": "ANON", "original_source": "pos"}, now=T0)
    assert ok["member_id"] is None


# --- bad input ----------------------------------------------------------------------------

BAD_ORDERS = [
    ("not a dict", "invalid_body"),
    (payload(amount="12.345"), "invalid_amount"),
    (payload(amount="-1"), "invalid_amount"),
    (payload(amount="abc"), "invalid_amount"),
    (payload(amount="NaN"), "invalid_amount"),
    (payload(amount=float("nan")), "invalid_amount"),
    (payload(amount="Infinity"), "invalid_amount"),
    (payload(amount="1e30"), "invalid_amount"),
    (payload(amount=True), "invalid_amount"),
    (payload(amount=None), "invalid_amount"),
    (payload(amount=""), "invalid_amount"),
    (payload(coupon="X"), "unknown_field"),
    (payload(external_id=None), "missing_field"),
    (payload(external_id="x" * 65), "invalid_field"),
    (payload(external_id={"a": 1}), "invalid_field"),
    (payload(placed_at=(T0 + days(1)).isoformat()), "invalid_time"),
    (payload(placed_at="2026-03-02T12:00:00"), "invalid_time"),
    (payload(placed_at="yesterday"), "invalid_time"),
    (payload(placed_at=1234567890), "invalid_time"),
    (payload(channel="fax"), "invalid_field"),
    (payload(lines="SKU-1"), "invalid_field"),
    (payload(lines=[{"sku": "A", "qty": 0, "unit_price": "1"}]), "invalid_field"),
    (payload(lines=[{"sku": "A", "qty": 1.5, "unit_price": "1"}]), "invalid_field"),
    (payload(lines=[{"sku": "A", "qty": 1, "unit_price": "-1"}]), "invalid_amount"),
    (payload(lines=[{"qty": 1, "unit_price": "1"}]), "missing_field"),
    (payload(lines=[3]), "invalid_field"),
    (payload(member_id="12"), "invalid_field"),
    (payload(member_id=True), "invalid_field"),
    (payload(member_id=987654), "unknown_member"),
    (payload(phone="12345"), "invalid_phone"),
    (payload(store_code="NOWHERE"), "unknown_store"),
    (payload(original_external_id="A"), "unknown_field"),
]


def test_bad_orders_are_refused_and_write_nothing(engine) -> None:
    join()
    for body, code in BAD_ORDERS:
        assert refused_cleanly(orders.record_order, "pos", body, now=T0) == code, body
    for source in ("", "s" * 33, None):
        assert refused_cleanly(orders.record_order, source, payload(), now=T0) == "invalid_source", source


def test_bad_returns_are_refused_and_write_nothing(engine) -> None:
    m = join()
    buy(m, "100.00", ext="X")
    base = {"external_id": "R", "placed_at": T0.isoformat(), "amount": "10.00", "original_external_id": "X"}
    cases = [
        ({**base, "amount": "100.01"}, "return_exceeds_order"),
        ({**base, "amount": "-5"}, "invalid_amount"),
        ({k: v for k, v in base.items() if k != "original_external_id"}, "missing_field"),
        ({**base, "placed_at": (T0 + days(2)).isoformat()}, "invalid_time"),
        ({**base, "reason": "broken"}, "unknown_field"),
        ({**base, "external_id": "X"}, "idempotency_conflict"),  # the order's own id
    ]
    for body, code in cases:
        assert refused_cleanly(orders.record_return, "pos", body, now=T0) == code, body
    assert check_points(m, T0) == 100
