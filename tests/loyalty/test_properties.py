"""Random histories of earning, spending, expiring, returning and adjusting keep the books exact.

A small model in plain Python predicts every lot; the database must agree with it and with
itself (balance = ledger = lots, each entry's balance_after, no negative lot).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from loyalty import config, db
from loyalty.config import Settings, TierDef
from loyalty.errors import LoyaltyError
from loyalty.members.models import Member
from loyalty.orders import service as orders
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot
from tests.loyalty.corekit import T0, check_points, join


@dataclass
class Lot:
    remaining: int
    expires_at: datetime
    order: str | None
    seq: int


@dataclass
class Bought:
    ext: str
    fen: int
    points: int
    returned_fen: int = 0
    clawed: int = 0


@dataclass
class Model:
    """What the books must say, computed without the database."""

    lots: list[Lot] = field(default_factory=list)
    bought: list[Bought] = field(default_factory=list)

    def expire(self, now: datetime) -> None:
        for lot in self.lots:
            if lot.expires_at <= now:
                lot.remaining = 0

    def live(self) -> int:
        """What the lots hold (all of it lives once :meth:`expire` ran for the current time)."""
        return sum(lot.remaining for lot in self.lots)

    def add(self, pts: int, now: datetime, order: str | None) -> None:
        if pts:
            self.lots.append(Lot(pts, points.expiry_for(now), order, len(self.lots)))

    def take(self, pts: int, first_order: str | None = None) -> int:
        left = pts
        ordered = sorted(self.lots, key=lambda lot: (lot.order != first_order if first_order else False,
                                                     lot.expires_at, lot.seq))
        for lot in ordered:
            n = min(lot.remaining, left)
            lot.remaining -= n
            left -= n
        return pts - left


# (action, size, pick): size is yuan to earn, points to spend or adjust, or the percent of an
# order to return. pick chooses which order a return is for, the sign of an adjustment, or how
# many days late a till posts an order (so that lots do not expire in the order they arrive).
ACTION = st.tuples(
    st.sampled_from(["earn", "earn", "spend", "adjust", "return", "return", "expire"]),
    st.sampled_from([1, 20, 50, 100, 150, 300]) | st.integers(1, 800),
    st.sampled_from([0, 1, 2, 20, 45, 90]),
)
WAIT = st.tuples(st.sampled_from([0, 0, 1, 1, 7, 30, 61, 200, 400]), st.integers(0, 23))  # days, hours
HISTORY = st.lists(st.tuples(ACTION, WAIT), min_size=2, max_size=18)
MODE = st.sampled_from(["days", "year_end_next"])


def one_tier(mode: str) -> Settings:
    # One tier (multiplier 1): points earned are the yuan paid, so the model stays simple.
    return Settings(expiry_mode=mode, expiry_days=60,
                    tiers=(TierDef("normal", "普通会员", "Member", 0, 1.0),))


def run_history(history: list, mode: str) -> None:
    config.use(one_tier(mode))
    m = join(T0)
    now = T0 + timedelta(days=100)  # room for orders the tills post late
    model = Model()
    for step, ((action, n, pick), (wait_days, wait_hours)) in enumerate(history):
        now += timedelta(days=wait_days, hours=wait_hours, seconds=1)
        if action == "return":
            n = min(n, 100)
        if action == "adjust" and pick % 2:
            n = -n
        if action == "earn":
            ext = f"E-{m}-{step}"
            placed = max(T0, now - timedelta(days=pick))
            res = db.run(orders.record_order, "pos", {"external_id": ext, "placed_at": placed.isoformat(),
                                                      "amount": f"{n}.00", "member_id": m}, now=now)
            assert res["points_earned"] == n
            model.expire(now)
            model.add(n, placed, ext)
            # The stored balance after the order: what lived before it, plus what it earned (a
            # lot posted very late may be born expired; the next expiry takes it).
            assert res["balance"] == model.live()
            model.bought.append(Bought(ext, n * 100, n))
        elif action in ("spend", "adjust") and not (action == "adjust" and n > 0):
            pts = abs(n)
            model.expire(now)
            try:
                if action == "spend":
                    mv = db.run(points.spend, m, pts, key=f"s{step}", reason="gift", now=now)
                else:
                    mv = db.run(points.adjust, m, -pts, reason="fix", actor="test", now=now)
            except LoyaltyError as exc:
                assert exc.code == "insufficient_points" and pts > model.live()
            else:
                assert pts <= model.live()
                model.take(pts)
                assert mv.balance == model.live()
        elif action == "adjust":
            db.run(points.adjust, m, n, reason="goodwill", actor="test", now=now)
            model.add(n, now, None)
        elif action == "return":
            open_orders = [b for b in model.bought if b.returned_fen < b.fen]
            if not open_orders:
                continue
            order = open_orders[pick % len(open_orders)]
            fen = max(1, (order.fen - order.returned_fen) * n // 100)
            res = db.run(orders.record_return, "pos", {
                "external_id": f"R-{m}-{step}", "placed_at": now.isoformat(), "amount": f"{fen / 100:.2f}",
                "original_external_id": order.ext}, now=now)
            order.returned_fen += fen
            due = order.points * order.returned_fen // order.fen - order.clawed
            order.clawed += due
            model.expire(now)
            taken = model.take(due, first_order=order.ext)
            assert (res["points_clawed_back"], res["shortfall"]) == (taken, due - taken)
        else:
            model.expire(now)
            db.run(points.expire_due_for, m, now)
        books_agree(m, model, now)
    # After the expiry job, the balance is what lives.
    model.expire(now)
    assert check_points(m, now) == model.live()


def books_agree(member_id: int, model: Model, now: datetime) -> None:
    """Check the invariants without changing anything (the expiry job may not have run)."""
    with db.session(readonly=True) as s:
        balance = s.get(Member, member_id).points_balance
        assert balance == points.ledger_total(s, member_id) == points.lots_total(s, member_id)
        lots = s.execute(select(PointsLot).where(PointsLot.member_id == member_id)
                         .order_by(PointsLot.id)).scalars().all()
        assert all(0 <= lot.remaining <= lot.amount for lot in lots)
        # Lots the job has not reached yet still count in the stored balance, never as live points.
        live = [lot.remaining if lot.expires_at > now else 0 for lot in lots]
        assert live == [lot.remaining if lot.expires_at > now else 0 for lot in model.lots]
        assert [lot.expires_at for lot in lots] == [lot.expires_at for lot in model.lots]
        assert points.live_balance(s, member_id, now) == sum(live) == points.summary(s, member_id, now=now).balance
        running = 0
        for e in s.execute(select(LedgerEntry).where(LedgerEntry.member_id == member_id)
                           .order_by(LedgerEntry.id)).scalars():
            running += e.delta
            assert e.balance_after == running >= 0
            assert e.shortfall >= 0


# Histories worth checking every time, whatever the random ones turn out to be.
RETURN_OF_THE_LATER_ORDER = [(("earn", 100, 0), (0, 0)), (("earn", 100, 0), (1, 0)), (("return", 100, 1), (1, 0))]
LATE_LOT_EXPIRES_FIRST = [(("earn", 100, 0), (0, 0)), (("earn", 100, 45), (1, 0)), (("spend", 50, 0), (1, 0))]
RETURN_AFTER_SPENDING = [(("earn", 100, 0), (0, 0)), (("spend", 80, 0), (1, 0)), (("return", 100, 0), (1, 0))]
RETURN_AFTER_EXPIRY = [(("earn", 100, 0), (0, 0)), (("earn", 30, 0), (40, 0)), (("return", 50, 0), (30, 0)),
                       (("expire", 1, 0), (0, 1)), (("return", 100, 0), (1, 0))]


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=HISTORY, mode=MODE)
@example(history=RETURN_OF_THE_LATER_ORDER, mode="days")
@example(history=LATE_LOT_EXPIRES_FIRST, mode="days")
@example(history=RETURN_AFTER_SPENDING, mode="year_end_next")
@example(history=RETURN_AFTER_EXPIRY, mode="days")
def test_books_stay_exact(sqlite_engine, history, mode) -> None:
    run_history(history, mode)


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=HISTORY, mode=MODE)
def test_books_stay_exact_on_every_backend(engine, history, mode) -> None:
    run_history(history, mode)
