"""Tiers: up at once at the threshold, down only at a review, rebuilt identically from the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from loyalty import config, db
from loyalty.config import SHANGHAI, Settings
from loyalty.members.models import Member
from loyalty.tiers import service as tiers
from loyalty.tiers.models import TierChange
from tests.loyalty.corekit import T0, buy, days, give_back, join


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def tier_of(member_id: int) -> str:
    with db.session(readonly=True) as s:
        return s.get(Member, member_id).tier


def changes(member_id: int) -> list[tuple[str, str, str]]:
    with db.session(readonly=True) as s:
        rows = s.execute(select(TierChange).where(TierChange.member_id == member_id)
                         .order_by(TierChange.id)).scalars()
        return [(c.from_tier, c.to_tier, c.reason) for c in rows]


def rebuilt(member_id: int) -> str:
    return db.run(tiers.rebuild, member_id, readonly=True)


def test_up_exactly_at_the_threshold_and_at_once(engine) -> None:
    m = join(local(2026, 2, 1))
    first = buy(m, "1999.99", local(2026, 2, 2))  # growth counts whole yuan: 1999
    assert (first["tier"], first["points_earned"]) == ("normal", 1999)
    second = buy(m, "1.00", local(2026, 2, 3))
    assert second["tier"] == "silver"
    # The order that crosses earns at the old rate, the next one at silver's 1.2.
    assert second["points_earned"] == 1
    assert buy(m, "100.00", local(2026, 2, 4))["points_earned"] == 120
    assert changes(m) == [("normal", "silver", "upgrade")]
    assert rebuilt(m) == "silver"


def test_several_tiers_at_once(engine) -> None:
    m = join(local(2026, 2, 1))
    assert buy(m, "15000.00", local(2026, 2, 2))["tier"] == "platinum"
    assert changes(m) == [("normal", "platinum", "upgrade")]


def test_down_only_at_the_review_after_the_period(engine) -> None:
    m = join(local(2025, 3, 1))
    buy(m, "2500.00", local(2025, 3, 2), ext="BIG")
    assert tier_of(m) == "silver"
    # A return takes the growth back below the threshold: no downgrade before a review.
    give_back("BIG", "1000.00", local(2025, 4, 1))
    assert tier_of(m) == "silver"
    assert db.run(tiers.members_due_for_review, local(2025, 12, 31, 23, 59)) == []
    assert db.run(tiers.review_member, m, local(2025, 12, 31, 23, 59)) == "silver"
    # 1 January 2026, 00:00 in Shanghai: the window (1500 yuan) earns only normal.
    assert db.run(tiers.members_due_for_review, local(2026, 1, 1)) == [m]
    assert db.run(tiers.review_member, m, local(2026, 1, 1)) == "normal"
    assert db.run(tiers.members_due_for_review, local(2026, 6, 1)) == []
    assert db.run(tiers.review_member, m, local(2026, 6, 1)) == "normal"  # idempotent
    assert changes(m) == [("normal", "silver", "upgrade"), ("silver", "normal", "review")]
    assert rebuilt(m) == "normal"


def test_a_review_keeps_the_tier_the_window_still_earns(engine) -> None:
    m = join(local(2025, 3, 1))
    buy(m, "7000.00", local(2025, 3, 2))
    assert tier_of(m) == "gold"
    buy(m, "100.00", local(2025, 12, 20))
    # At the 2027 review only the December purchase is in the window.
    assert db.run(tiers.review_member, m, local(2026, 1, 2)) == "gold"
    assert db.run(tiers.review_member, m, local(2027, 1, 2)) == "normal"
    assert [c[2] for c in changes(m)] == ["upgrade", "review"]
    assert rebuilt(m) == "normal"


def test_a_late_review_does_not_undo_an_upgrade_earned_after_its_boundary(engine) -> None:
    m = join(local(2025, 3, 1))
    buy(m, "2500.00", local(2025, 3, 2))  # silver
    buy(m, "4000.00", local(2026, 2, 1))  # gold: 6500 in the window
    # The review job for 1 January 2026 only runs in March.
    assert db.run(tiers.review_member, m, local(2026, 3, 1)) == "gold"
    assert rebuilt(m) == "gold"
    # Without the February order the review would keep silver (2500 in the window at 1 January).
    n = join(local(2025, 3, 1))
    buy(n, "2500.00", local(2025, 3, 2))
    assert db.run(tiers.review_member, n, local(2026, 3, 1)) == "silver"


def test_quarterly_and_odd_periods() -> None:
    for months in (1, 2, 3, 4, 5, 6, 7, 12):
        st = Settings(tier_period_months=months)
        start, end = local(2025, 1, 1), local(2028, 1, 1)
        bs = tiers.boundaries(start - timedelta(seconds=1), end, st)
        assert bs[0] == start and bs[-1] == end
        assert all(b.astimezone(SHANGHAI).day == 1 and b.astimezone(SHANGHAI).hour == 0 for b in bs)
        # Every year starts a period afresh, and the periods between are `months` long.
        assert {b.astimezone(SHANGHAI).month for b in bs} == set(range(1, 13, months))
        for b, nxt in zip(bs, bs[1:], strict=False):
            mid = b + (nxt - b) / 2
            assert tiers.last_boundary(mid, st) == b
            assert tiers.last_boundary(b, st) == b
            assert tiers.next_boundary(mid, st) == nxt
            assert tiers.next_boundary(b, st) == nxt
            assert tiers.boundaries(b, mid, st) == []
            assert tiers.boundaries(mid, nxt, st) == [nxt]


def test_status_says_how_far_to_the_next_tier(engine) -> None:
    m = join(local(2026, 2, 1))
    buy(m, "1500.00", local(2026, 2, 2))
    st = db.run(tiers.status, m, local(2026, 2, 3), readonly=True)
    assert (st.tier.code, st.growth, st.next_tier.code, st.to_next) == ("normal", 1500, "silver", 500)
    assert st.next_review == local(2027, 1, 1).date()
    buy(m, "20000.00", local(2026, 2, 4))
    top = db.run(tiers.status, m, local(2026, 2, 5), readonly=True)
    assert (top.tier.code, top.next_tier, top.to_next) == ("platinum", None, 0)
    assert top.tier.priority_service and top.tier.multiplier == 2.0
    # Growth leaves the window after a year, but the tier stays until the review.
    later = db.run(tiers.status, m, local(2027, 2, 10), readonly=True)
    assert (later.tier.code, later.growth) == ("platinum", 0)
    config.use(Settings(tier_period_months=3))
    assert db.run(tiers.status, m, local(2026, 2, 3), readonly=True).next_review == local(2026, 4, 1).date()


def test_status_of_an_unknown_member(engine) -> None:
    from tests.loyalty.corekit import refused_cleanly

    assert refused_cleanly(tiers.status, 424242) == "member_not_found"
    assert refused_cleanly(tiers.review_member, 424242) == "member_not_found"


# --- the stored tier equals the ledger's replay -------------------------------------------

# Amounts near the thresholds and waits that cross review boundaries and the window find
# the interesting histories with few examples.
STEP = st.tuples(
    st.sampled_from(["buy", "buy", "buy", "return", "review", "wait"]),
    st.one_of(st.sampled_from([1, 500, 1999, 2000, 4000, 6000, 9000]), st.integers(1, 9000)),  # yuan
    st.sampled_from([0, 0, 3, 30, 95, 200, 370]),  # days to move forward
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=14), quarterly=st.booleans())
def test_tiers_rebuild_from_the_ledger(sqlite_engine, steps, quarterly) -> None:
    _rebuild_matches(steps, quarterly)


@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=12), quarterly=st.booleans())
def test_tiers_rebuild_from_the_ledger_on_every_backend(engine, steps, quarterly) -> None:
    _rebuild_matches(steps, quarterly)


def _rebuild_matches(steps: list[tuple[str, int, int]], quarterly: bool) -> None:
    config.use(Settings(tier_period_months=3 if quarterly else 12))
    now = T0
    m = join(now)  # a fresh member per example: the database is shared by the examples
    bought: list[tuple[str, int]] = []
    for action, yuan, wait in steps:
        now += days(wait) + timedelta(minutes=1)
        if action == "buy":
            bought.append((_buy(m, yuan, now), yuan))
        elif action == "return" and bought:
            ext, left = bought.pop(0)
            give_back(ext, f"{min(yuan, left)}.00", now)
        elif action == "review":
            db.run(tiers.review_member, m, now)
        assert rebuilt(m) == tier_of(m), (action, now)
    db.run(tiers.review_member, m, now + days(400))
    assert rebuilt(m) == tier_of(m)


def _buy(member_id: int, yuan: int, at: datetime) -> str:
    ext = f"H-{member_id}-{at.timestamp()}"
    buy(member_id, f"{yuan}.00", at, ext=ext)
    return ext
