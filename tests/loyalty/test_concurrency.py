"""Concurrent requests on SQLite and PostgreSQL: stock, limits, redemptions, spends and orders count once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select

from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon, CouponCampaign, CouponHolding
from loyalty.errors import LoyaltyError
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.orders.models import Order
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry
from loyalty.tiers.models import TierChange
from tests.loyalty.corekit import T0, buy, campaign, check_points, days, in_parallel, join, many_members, phone


def codes(results: list[Any]) -> Counter[str]:
    """How many calls succeeded ("ok") and which error codes the others got."""
    out: Counter[str] = Counter()
    for r in results:
        if isinstance(r, LoyaltyError):
            out[r.code] += 1
        elif isinstance(r, Exception):
            raise r  # anything but a domain error is a bug
        else:
            out["ok"] += 1
    return out


def scalar(q: Any) -> Any:
    with db.session(readonly=True) as s:
        return s.execute(q).scalar_one()


def test_stock_is_never_oversold(engine) -> None:
    campaign("C100", total_stock=100)
    ids = many_members(1000)
    got = codes(in_parallel([lambda m=m: db.run(coupons.claim, m, "C100", key="k", now=T0) for m in ids], 32))
    assert got == {"ok": 100, "out_of_stock": 900}
    camp = coupons.CouponCampaign
    assert scalar(select(func.count()).select_from(Coupon)) == 100
    assert scalar(select(camp.issued).where(camp.code == "C100")) == 100
    assert scalar(select(func.count(func.distinct(Coupon.member_id)))) == 100
    assert scalar(select(func.sum(CouponHolding.count))) == 100


def test_per_member_limit_holds_under_concurrency(engine) -> None:
    campaign("ONE", total_stock=1000, per_member_limit=1)
    m = join()
    got = codes(in_parallel([lambda i=i: db.run(coupons.claim, m, "ONE", key=f"k{i}", now=T0) for i in range(50)]))
    assert got == {"ok": 1, "limit_reached": 49}
    assert scalar(select(func.count()).select_from(Coupon).where(Coupon.member_id == m)) == 1
    assert scalar(select(CouponCampaign.issued).where(CouponCampaign.code == "ONE")) == 1


def test_same_claim_key_twice_at_once_gives_one_coupon(engine) -> None:
    campaign("TWO", total_stock=10, per_member_limit=5)
    m = join()
    results = in_parallel([lambda: db.run(coupons.claim, m, "TWO", key="same", now=T0) for _ in range(20)])
    assert codes(results) == {"ok": 20}
    assert len({r.coupon.code for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert scalar(select(CouponCampaign.issued).where(CouponCampaign.code == "TWO")) == 1


def test_exchange_for_points_under_concurrency(engine) -> None:
    campaign("SWAP", total_stock=10, points_cost=100)
    ids = many_members(40)
    for m in ids:
        db.run(points.adjust, m, 150, reason="setup", actor="test", now=T0)
    got = codes(in_parallel([lambda m=m: db.run(coupons.claim, m, "SWAP", key="x", now=T0) for m in ids]))
    assert got == {"ok": 10, "out_of_stock": 30}
    with db.session(readonly=True) as s:
        balances = Counter(s.get(Member, m).points_balance for m in ids)
    assert balances == {50: 10, 150: 30}
    for m in ids[:5]:
        check_points(m, T0)


def test_one_code_redeems_once(engine) -> None:
    campaign("RED")
    m = join()
    code = db.run(coupons.claim, m, "RED", key="k", now=T0).coupon.code
    results = in_parallel(
        [lambda i=i: db.run(coupons.redeem, code, order_ref=f"till-{i}", order_amount_fen=20000, now=T0)
         for i in range(30)]
    )
    assert codes(results) == {"ok": 1, "already_redeemed": 29}
    winner = next(r for r in results if not isinstance(r, Exception))
    assert scalar(select(Coupon.redeemed_ref).where(Coupon.code == code)) == winner.order_ref


def test_the_same_till_retrying_gets_the_same_answer(engine) -> None:
    campaign("RETRY")
    m = join()
    code = db.run(coupons.claim, m, "RETRY", key="k", now=T0).coupon.code
    results = in_parallel(
        [lambda: db.run(coupons.redeem, code, order_ref="till-1", order_amount_fen=20000, now=T0)
         for _ in range(20)]
    )
    assert codes(results) == {"ok": 20}
    assert {(r.order_ref, r.discount, r.redeemed_at) for r in results} == {("till-1", "20.00", T0)}


def test_balance_never_goes_negative(engine) -> None:
    m = join()
    db.run(points.adjust, m, 100, reason="setup", actor="test", now=T0)
    got = codes(in_parallel([lambda i=i: db.run(points.spend, m, 100, key=f"s{i}", reason="gift", now=T0)
                             for i in range(20)]))
    assert got == {"ok": 1, "insufficient_points": 19}
    assert check_points(m, T0) == 0


def test_same_spend_key_at_once_spends_once(engine) -> None:
    m = join()
    db.run(points.adjust, m, 300, reason="setup", actor="test", now=T0)
    results = in_parallel([lambda: db.run(points.spend, m, 100, key="one", reason="gift", now=T0)
                           for _ in range(20)])
    assert codes(results) == {"ok": 20}
    assert {r.entry_id for r in results} == {results[0].entry_id}
    assert check_points(m, T0) == 200


def order_payload(member_id: int | None, ext: str) -> dict[str, Any]:
    p: dict[str, Any] = {"external_id": ext, "placed_at": T0.isoformat(), "amount": "250.00"}
    if member_id is not None:
        p["member_id"] = member_id
    return p


def test_an_order_posted_many_times_earns_once(engine) -> None:
    m = join()
    first = db.run(orders.record_order, "pos", order_payload(m, "A-1"), now=T0)
    again = [db.run(orders.record_order, "pos", order_payload(m, "A-1"), now=T0) for _ in range(3)]
    assert not first["replayed"] and all(r["replayed"] for r in again)
    assert {r["points_earned"] for r in again} == {first["points_earned"]} == {250}

    results = in_parallel([lambda: db.run(orders.record_order, "pos", order_payload(m, "A-2"), now=T0)
                           for _ in range(20)])
    assert codes(results) == {"ok": 20}
    assert sum(not r["replayed"] for r in results) == 1
    assert {r["order_id"] for r in results} == {results[0]["order_id"]}
    assert scalar(select(func.count()).select_from(Order)) == 2
    assert scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "earn")) == 2
    assert check_points(m, T0) == 500


def test_an_anonymous_order_posted_at_once_is_kept_once(engine) -> None:
    # No member row to lock: the unique (source, external id) decides, and the loser replays.
    results = in_parallel([lambda: db.run(orders.record_order, "web", order_payload(None, "W-1"), now=T0)
                           for _ in range(16)])
    assert codes(results) == {"ok": 16}
    assert sum(not r["replayed"] for r in results) == 1
    assert scalar(select(func.count()).select_from(Order)) == 1


def test_concurrent_returns_never_exceed_the_order(engine) -> None:
    m = join()
    buy(m, "100.00", ext="B-1")
    buy(None, "100.00", ext="B-2")
    for ext in ("B-1", "B-2"):
        results = in_parallel([
            lambda i=i, ext=ext: db.run(orders.record_return, "pos", {
                "external_id": f"{ext}-R{i}", "placed_at": T0.isoformat(), "amount": "60.00",
                "original_external_id": ext}, now=T0)
            for i in range(10)
        ])
        assert codes(results) == {"ok": 1, "return_exceeds_order": 9}
    assert scalar(select(func.count()).select_from(Order).where(Order.kind == "return")) == 2
    assert check_points(m, T0) == 40


def test_one_phone_joins_once(engine) -> None:
    number = phone()
    results = in_parallel([lambda i=i: db.run(membership.signup, phone=number, consent=True, channel="webchat",
                                              external_id=f"v{i}", now=T0) for i in range(16)])
    assert codes(results) == {"ok": 1, "already_member": 15}
    assert scalar(select(func.count()).select_from(Member)) == 1


def test_mixed_traffic_keeps_the_books_balanced(engine) -> None:
    """Earning, spending, adjusting, returning and the expiry job on one member at once."""
    m = join()
    old = buy(m, "300.00", T0 - days(400), ext="OLD")  # expired by T0
    assert old["points_earned"] == 300
    buy(m, "1000.00", T0, ext="NOW")
    calls = []
    for i in range(12):
        calls.append(lambda i=i: buy(m, "10.00", T0, ext=f"M-{i}"))
        calls.append(lambda i=i: db.run(points.spend, m, 30, key=f"m{i}", reason="gift", now=T0))
        calls.append(lambda: db.run(points.expire_due_for, m, T0))
        calls.append(lambda i=i: db.run(points.adjust, m, -5, reason="fix", actor="agent", key=f"a{i}", now=T0))
    calls.append(lambda: db.run(orders.record_return, "pos", {
        "external_id": "NOW-R", "placed_at": T0.isoformat(), "amount": "100.00",
        "original_external_id": "NOW"}, now=T0))
    results = in_parallel(calls, 16)
    assert codes(results)["ok"] == len(calls)
    # 1000 + 12*10 earned, 12*30 spent, 12*5 adjusted, 100 clawed back; the old 300 expired once.
    assert check_points(m, T0) == 1000 + 120 - 360 - 60 - 100
    assert scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "expire")) == 1


def test_a_request_waiting_for_the_member_sees_what_the_holder_wrote(engine) -> None:
    """An order that waited for the member lock earns at the tier the previous order gave."""
    m = join()
    started, release = threading.Event(), threading.Event()

    def big_order_then_wait(s: Any) -> dict[str, Any]:
        res = orders.record_order(s, "pos", order_payload(m, "BIG") | {"amount": "2000.00"}, now=T0)
        started.set()
        release.wait(10)
        return res

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(db.run, big_order_then_wait)
        assert started.wait(10)
        second = pool.submit(buy, m, "100.00", T0, ext="SMALL")
        time.sleep(0.5)  # let the second order read the member and queue for its lock
        release.set()
        assert first.result()["tier"] == "silver"
        assert second.result()["points_earned"] == 120  # silver earns 1.2 points a yuan
    assert scalar(select(func.count()).select_from(TierChange)) == 1
    assert check_points(m, T0) == 2120


def test_welcome_coupons_run_out_cleanly_under_a_rush_of_signups(engine) -> None:
    campaign("WELCOME", audience="welcome", total_stock=5)
    results = in_parallel([lambda: db.run(membership.signup, phone=phone(), consent=True, now=T0) for _ in range(40)])
    assert codes(results) == {"ok": 40}
    assert sum(r.welcome_coupon is not None for r in results) == 5
    assert scalar(select(func.count()).select_from(Coupon)) == 5
    # A grant refused at the stock guard must not leave its holding counted.
    assert scalar(select(func.sum(CouponHolding.count))) == 5
