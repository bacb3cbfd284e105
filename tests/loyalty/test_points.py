"""Points: lots spent earliest-expiring first, expiry at Asia/Shanghai midnights, the summary, adjustments."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from loyalty import config, db
from loyalty.audit import AuditEntry
from loyalty.config import SHANGHAI, Settings
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot
from tests.loyalty.corekit import T0, buy, check_points, counts, days, error_of, join, refused_cleanly

UTC = timezone.utc


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def lots(member_id: int) -> list[tuple[int, int, datetime]]:
    with db.session(readonly=True) as s:
        rows = s.execute(select(PointsLot.amount, PointsLot.remaining, PointsLot.expires_at)
                         .where(PointsLot.member_id == member_id).order_by(PointsLot.id)).all()
    return [tuple(r) for r in rows]


def live(member_id: int, at: datetime) -> int:
    return db.run(points.live_balance, member_id, at, readonly=True)


# --- when points expire -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("earned", "expiry_days", "gone_at"),
    [
        # 14:00 in Shanghai on 31 January, 30 days: valid through 2 March, gone at 3 March 00:00.
        (local(2026, 1, 31, 14), 30, local(2026, 3, 3)),
        # 17:30 UTC on 31 January is already 1 February in Shanghai.
        (datetime(2026, 1, 31, 17, 30, tzinfo=UTC), 30, local(2026, 3, 4)),
        # 23:59:59 local is still the same day.
        (local(2026, 1, 31, 23, 59, 59), 30, local(2026, 3, 3)),
        # A leap year: 365 days after 1 March 2027 is 29 February 2028.
        (local(2027, 3, 1, 9), 365, local(2028, 3, 1)),
        (local(2026, 2, 28, 9), 1, local(2026, 3, 2)),
    ],
)
def test_days_mode_expires_at_a_shanghai_midnight(earned: datetime, expiry_days: int, gone_at: datetime) -> None:
    st = Settings(expiry_mode="days", expiry_days=expiry_days)
    assert points.expiry_for(earned, st) == gone_at


@pytest.mark.parametrize(
    ("earned", "gone_at"),
    [
        (local(2026, 1, 31, 14), local(2028, 1, 1)),
        (local(2026, 12, 31, 23, 59, 59), local(2028, 1, 1)),
        # 16:30 UTC on 31 December 2026 is New Year's Day 2027 in Shanghai.
        (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), local(2029, 1, 1)),
    ],
)
def test_year_end_next_mode(earned: datetime, gone_at: datetime) -> None:
    assert points.expiry_for(earned, Settings(expiry_mode="year_end_next")) == gone_at


@pytest.mark.parametrize("mode", ["days", "year_end_next"])
def test_a_lot_is_live_until_the_last_second_of_its_last_local_day(engine, mode: str) -> None:
    config.use(Settings(expiry_mode=mode, expiry_days=30))
    earned = local(2026, 1, 31, 14)
    m = join(earned)
    buy(m, "100.00", earned)
    gone = local(2026, 3, 3) if mode == "days" else local(2028, 1, 1)
    assert lots(m)[0][2] == gone
    last_second = gone - days(1) + (local(2026, 1, 1, 23, 59, 59) - local(2026, 1, 1))
    assert last_second.astimezone(SHANGHAI).strftime("%H:%M:%S") == "23:59:59"
    assert live(m, last_second) == 100
    summ = db.run(points.summary, m, now=last_second, readonly=True)
    assert (summ.balance, summ.next_expiry) == (100, (gone - days(1)).date())
    assert db.run(points.expire_due_for, m, last_second) == 0
    assert live(m, gone) == 0
    assert db.run(points.members_with_due_lots, gone) == [m]
    assert db.run(points.expire_due_for, m, gone) == 100
    assert check_points(m, gone) == 0


def test_spending_takes_the_earliest_expiring_lot_first(engine) -> None:
    m = join(T0)
    buy(m, "100.00", T0)  # lot A, expires first
    buy(m, "100.00", T0 + days(10))  # lot B
    at = T0 + days(20)
    db.run(points.spend, m, 150, key="gift", reason="gift", now=at)
    (a_amt, a_left, a_exp), (b_amt, b_left, b_exp) = lots(m)
    assert (a_left, b_left) == (0, 50) and a_exp < b_exp
    # A's expiry takes nothing (it is empty); B's takes what is left of it.
    assert db.run(points.expire_due_for, m, a_exp) == 0
    assert db.run(points.expire_due_for, m, b_exp) == 50
    assert check_points(m, b_exp) == 0


def test_a_lot_earned_later_but_expiring_sooner_goes_first(engine) -> None:
    """Under year_end_next, order lots by expiry, not by when they were earned."""
    config.use(Settings(expiry_mode="year_end_next"))
    m = join(T0)
    db.run(points.adjust, m, 70, reason="goodwill", actor="agent", now=local(2026, 6, 1))
    buy(m, "100.00", local(2025, 12, 30))  # posted late: expires at the end of 2026, before the adjustment
    db.run(points.spend, m, 80, key="g", reason="gift", now=local(2026, 6, 2))
    assert [(amt, left) for amt, left, _ in lots(m)] == [(70, 70), (100, 20)]


def test_partial_lots_and_the_expiry_job_is_idempotent(engine) -> None:
    m = join(T0)
    for i in range(3):
        buy(m, "100.00", T0 + days(i))
    db.run(points.spend, m, 130, key="s", reason="gift", now=T0 + days(5))
    assert [left for _, left, _ in lots(m)] == [0, 70, 100]
    later = T0 + days(367)  # the first two lots are due, the third not yet
    assert db.run(points.members_with_due_lots, later) == [m]
    assert db.run(points.expire_due_for, m, later) == 70
    assert db.run(points.expire_due_for, m, later) == 0
    assert db.run(points.expire_due_for, m, later + days(0.4)) == 0
    assert db.run(points.members_with_due_lots, later) == []
    with db.session(readonly=True) as s:
        expired = s.execute(select(LedgerEntry).where(LedgerEntry.kind == "expire")).scalars().all()
    assert [(e.delta, e.balance_after) for e in expired] == [(-70, 100)]
    # The entry is dated when the lot expired, not when the job ran.
    assert expired[0].created_at == lots(m)[1][2]
    assert check_points(m, later) == 100


def test_spending_never_uses_points_that_have_expired(engine) -> None:
    m = join(T0)
    buy(m, "100.00", T0)
    after = T0 + days(400)
    # Nobody ran the expiry job: the spend must expire the lot itself and refuse.
    before = counts()
    assert error_of(points.spend, m, 50, key="late", reason="gift", now=after).code == "insufficient_points"
    assert counts() == before
    assert check_points(m, after) == 0


# --- the summary ------------------------------------------------------------------------


def test_summary_shows_the_next_expiry_and_what_expires_soon(engine) -> None:
    config.use(Settings(expiry_days=60, expiring_soon_days=30))
    m = join(T0)
    buy(m, "100.00", local(2026, 1, 10, 12))  # gone 2026-03-12 00:00, last day 11 March
    buy(m, "40.00", local(2026, 1, 10, 18))  # same lot day
    buy(m, "50.00", local(2026, 2, 20, 12))  # gone 2026-04-22 00:00
    db.run(points.spend, m, 30, key="s", reason="gift", now=local(2026, 2, 21))
    summ = db.run(points.summary, m, now=local(2026, 2, 25), readonly=True)
    assert summ.balance == 160
    assert summ.next_expiry == local(2026, 3, 11).date()
    assert summ.next_expiry_points == 110
    assert summ.expiring_soon == 110  # the April lot is more than 30 days away
    assert [line.kind for line in summ.recent][:2] == ["spend", "earn"]
    assert summ.recent[0].balance_after == 160
    # On the last day the lot still counts; the next day it is gone even before the job runs.
    assert db.run(points.summary, m, now=local(2026, 3, 11, 23, 59), readonly=True).balance == 160
    nxt = db.run(points.summary, m, now=local(2026, 3, 12), readonly=True)
    assert (nxt.balance, nxt.next_expiry, nxt.expiring_soon) == (50, local(2026, 4, 21).date(), 0)
    assert db.run(points.summary, m, now=local(2026, 3, 23), readonly=True).expiring_soon == 50


def test_summary_of_a_member_without_points(engine) -> None:
    m = join(T0)
    summ = db.run(points.summary, m, now=T0, readonly=True)
    assert (summ.balance, summ.expiring_soon, summ.next_expiry, summ.next_expiry_points) == (0, 0, None, 0)


def test_the_member_card_does_not_count_expired_points(engine) -> None:
    from loyalty.membership import service as membership

    m = join(T0)
    buy(m, "100.00", T0)
    with db.session(readonly=True) as s:
        assert points.live_balance(s, m) == 100  # the lot lives until 2027
    assert db.run(membership.card, m).points == 100
    # The card reads the clock: move the lot's expiry into the past rather than the clock forward.
    with db.session() as s, s.begin():
        s.execute(PointsLot.__table__.update().values(expires_at=T0))
    assert db.run(membership.card, m).points == 0


# --- adjustments and spending: input and idempotency ---------------------------------------


def test_adjust_is_audited_once_per_key(engine) -> None:
    m = join(T0)
    first = db.run(points.adjust, m, 50, reason="goodwill", actor="agent-7", key="case-1", now=T0)
    again = db.run(points.adjust, m, 50, reason="goodwill", actor="agent-7", key="case-1", now=T0)
    assert first == again and first.balance == 50
    with db.session(readonly=True) as s:
        audits = s.execute(select(AuditEntry).where(AuditEntry.action == "points_adjust")).scalars().all()
    assert [(a.actor, a.note, a.detail["delta"]) for a in audits] == [("agent-7", "goodwill", 50)]
    assert refused_cleanly(points.adjust, m, 60, reason="goodwill", actor="agent-7", key="case-1",
                           now=T0) == "idempotency_conflict"
    db.run(points.adjust, m, -20, reason="correction", actor="agent-7", now=T0)
    assert check_points(m, T0) == 30


def test_spend_is_once_per_key_and_a_key_is_for_one_amount(engine) -> None:
    m = join(T0)
    db.run(points.adjust, m, 100, reason="setup", actor="test", now=T0)
    a = db.run(points.spend, m, 40, key="g1", reason="gift", now=T0)
    b = db.run(points.spend, m, 40, key="g1", reason="gift", now=T0)
    assert a == b and a.balance == 60
    assert refused_cleanly(points.spend, m, 41, key="g1", reason="gift", now=T0) == "idempotency_conflict"
    assert check_points(m, T0) == 60
    # Keys are each member's own: another member's "g1" is another spend.
    other = join(T0)
    db.run(points.adjust, other, 100, reason="setup", actor="test", key="setup", now=T0)
    db.run(points.adjust, m, 5, reason="setup", actor="test", key="setup", now=T0)
    assert db.run(points.spend, other, 40, key="g1", reason="gift", now=T0).balance == 60
    assert (check_points(m, T0), check_points(other, T0)) == (65, 60)


BAD_ADJUSTMENTS = [
    (dict(delta=0, reason="x", actor="a"), "invalid_points"),
    (dict(delta=5_000_000, reason="x", actor="a"), "invalid_points"),
    (dict(delta="10", reason="x", actor="a"), "invalid_points"),
    (dict(delta=1.5, reason="x", actor="a"), "invalid_points"),
    (dict(delta=True, reason="x", actor="a"), "invalid_points"),
    (dict(delta=10, reason="  ", actor="a"), "reason_required"),
    (dict(delta=10, reason="x" * 201, actor="a"), "invalid_reason"),
    (dict(delta=10, reason="x", actor=""), "actor_required"),
    (dict(delta=10, reason="x", actor="a" * 65), "invalid_actor"),
    (dict(delta=10, reason="x", actor="a", key="k" * 101), "invalid_key"),
    (dict(delta=-10, reason="x", actor="a"), "insufficient_points"),
]

BAD_SPENDS = [
    (0, "k", "invalid_points"),
    (-5, "k", "invalid_points"),
    ("5", "k", "invalid_points"),
    (500, "k", "insufficient_points"),
    (5, "", "invalid_key"),
    (5, "k" * 101, "invalid_key"),
]


def test_bad_adjustments_and_spends_write_nothing(engine) -> None:
    m = join(T0)
    for kwargs, code in BAD_ADJUSTMENTS:
        kwargs = dict(kwargs)
        delta = kwargs.pop("delta")
        assert refused_cleanly(points.adjust, m, delta, now=T0, **kwargs) == code, kwargs
    db.run(points.adjust, m, 100, reason="setup", actor="test", now=T0)
    for amount, key, code in BAD_SPENDS:
        assert refused_cleanly(points.spend, m, amount, key=key, reason="gift", now=T0) == code, (amount, key)
    assert refused_cleanly(points.spend, m, 5, key="k", reason="", now=T0) == "reason_required"
    assert check_points(m, T0) == 100


def test_points_of_an_unknown_or_closed_member(engine) -> None:
    from loyalty.membership import service as membership

    assert refused_cleanly(points.spend, 999_999, 5, key="k", reason="gift", now=T0) == "member_not_found"
    assert refused_cleanly(points.adjust, "abc", 5, reason="x", actor="a", now=T0) == "member_not_found"
    m = join(T0)
    db.run(points.adjust, m, 10, reason="x", actor="a", now=T0)
    db.run(membership.close_account, m, actor="member", now=T0)
    assert refused_cleanly(points.adjust, m, 5, reason="x", actor="a", now=T0) == "member_closed"
    assert refused_cleanly(points.spend, m, 5, key="k", reason="gift", now=T0) == "member_closed"
