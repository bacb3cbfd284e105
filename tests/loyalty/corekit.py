"""Small helpers shared by the loyalty core tests: members, orders, campaigns, row counts, invariants."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from loyalty import db, schema
from loyalty.coupons import service as coupons
from loyalty.errors import LoyaltyError
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot

# A fixed "now" well inside the valid range of every rule (UTC noon is 20:00 in Shanghai).
T0 = datetime(2026, 3, 2, 4, 0, tzinfo=timezone.utc)

_phones = itertools.count(1)
_lock = threading.Lock()


def phone() -> str:
    """A fresh valid mainland mobile number for each call."""
    with _lock:
        n = next(_phones)
    return f"139{n:08d}"


def join(now: datetime = T0, **kw: Any) -> int:
    """Sign a new member up and return the id."""
    kw.setdefault("phone", phone())
    kw.setdefault("consent", True)
    return db.run(membership.signup, now=now, **kw).card.id


def many_members(n: int, now: datetime = T0) -> list[int]:
    """Insert ``n`` plain members in one transaction (setup for load tests; signup is tested elsewhere)."""

    def add(s: Any) -> list[int]:
        rows = [Member(phone=phone(), referral_code=f"T{next(_phones):09d}", tier="normal",
                       points_balance=0, consent_version="t", consent_at=now, marketing_opt_in=True,
                       status="active", created_at=now) for _ in range(n)]
        s.add_all(rows)
        s.flush()
        return [m.id for m in rows]

    return db.run(add)


def buy(member_id: int | None, amount: str, at: datetime = T0, *, ext: str | None = None,
        source: str = "pos", **extra: Any) -> dict[str, Any]:
    """Post an order of ``amount`` yuan placed at ``at`` (also the time it is posted)."""
    payload: dict[str, Any] = {
        "external_id": ext or f"O-{next(_phones)}", "placed_at": at.isoformat(), "amount": amount, **extra,
    }
    if member_id is not None:
        payload["member_id"] = member_id
    return db.run(orders.record_order, source, payload, now=at)


def give_back(ext: str, amount: str, at: datetime = T0, *, ret: str | None = None,
              source: str = "pos") -> dict[str, Any]:
    """Post a return of ``amount`` yuan of order ``ext``."""
    payload = {"external_id": ret or f"R-{next(_phones)}", "placed_at": at.isoformat(), "amount": amount,
               "original_external_id": ext}
    return db.run(orders.record_return, source, payload, now=at)


def campaign(code: str, **kw: Any) -> coupons.CampaignView:
    """Create a campaign with sensible defaults (a 满100减20 coupon valid 30 days)."""
    f: dict[str, Any] = dict(code=code, name_zh=code, name_en=code, kind="threshold", threshold_fen=10000,
                             discount_fen=2000, valid_days=30)
    f.update(kw)
    return db.run(coupons.create_campaign, **f)


def counts() -> dict[str, int]:
    """Rows in every table of the core: a failed call must leave them all unchanged."""
    with db.session(readonly=True) as s:
        return {
            t.name: int(s.execute(select(func.count()).select_from(t)).scalar_one())
            for t in schema.metadata.sorted_tables
        }


def state_of(member_id: int) -> tuple[Any, ...]:
    """What can change about a member's points: the balance and every lot's remainder."""
    with db.session(readonly=True) as s:
        m = s.get(Member, member_id)
        lots = s.execute(select(PointsLot.id, PointsLot.remaining).where(PointsLot.member_id == member_id)
                         .order_by(PointsLot.id)).all()
        return (m.points_balance if m else None, m.tier if m else None, tuple(map(tuple, lots)))


def error_of(fn: Callable[..., Any], *args: Any, **kw: Any) -> LoyaltyError:
    """Run a service expecting a domain error; return it (fails the test when none is raised)."""
    try:
        db.run(fn, *args, **kw)
    except LoyaltyError as exc:
        return exc
    raise AssertionError(f"{fn.__name__} did not refuse")


def refused_cleanly(fn: Callable[..., Any], *args: Any, **kw: Any) -> str:
    """Run a service expecting a domain error and no row written anywhere; return the error code."""
    before = counts()
    err = error_of(fn, *args, **kw)
    assert counts() == before, f"{err.code}: rows changed"
    return err.code


def check_points(member_id: int, now: datetime) -> int:
    """Expire what is due, then check the ledger invariants; return the balance."""
    db.run(points.expire_due_for, member_id, now)
    with db.session(readonly=True) as s:
        bal = s.get(Member, member_id).points_balance
        assert bal >= 0
        assert points.ledger_total(s, member_id) == bal
        assert points.lots_total(s, member_id) == bal
        assert points.live_balance(s, member_id, now) == bal
        assert points.summary(s, member_id, now=now).balance == bal
        lots = s.execute(select(PointsLot).where(PointsLot.member_id == member_id)).scalars().all()
        assert all(0 <= lot.remaining <= lot.amount for lot in lots)
        # Expired lots hold nothing, live ones may.
        assert all(lot.remaining == 0 for lot in lots if lot.expires_at <= now)
        running = 0
        for e in s.execute(select(LedgerEntry).where(LedgerEntry.member_id == member_id)
                           .order_by(LedgerEntry.id)).scalars():
            running += e.delta
            assert e.balance_after == running >= 0, f"entry {e.id} {e.kind}"
        return bal


def in_parallel(calls: Iterable[Callable[[], Any]], workers: int = 24) -> list[Any]:
    """Run every call on a thread pool at once; each result is a value or the exception raised."""
    go_signal = threading.Event()

    def go(call: Callable[[], Any]) -> Any:
        go_signal.wait(10)  # start together, to make the calls overlap as much as possible
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the test inspects each outcome
            return exc

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(go, c) for c in calls]
        go_signal.set()
        return [f.result() for f in futures]


def days(n: float) -> timedelta:
    return timedelta(days=n)
