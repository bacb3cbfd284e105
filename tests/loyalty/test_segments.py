"""RFM scores, segments, lifecycle and tags on hand-made members with known answers."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

import pytest

from loyalty.segments.rfm import (
    DEAL_SEEKER,
    FULL_PRICE,
    LIFECYCLES,
    SEGMENTS,
    MemberActivity,
    Rules,
    lifecycle_of,
    profiles,
    quintile_scores,
    segment_of,
)

AS_OF = datetime(2026, 3, 1, tzinfo=timezone.utc)


def ago(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def buyer(member_id: int, last_days: float, orders: int, spend: int, **kw: object) -> MemberActivity:
    return MemberActivity(
        member_id=member_id, joined_at=ago(400), orders=orders, spend_fen=spend,
        first_order_at=ago(380), last_order_at=ago(last_days), **kw,  # type: ignore[arg-type]
    )


def test_quintiles_of_five_distinct_values_are_one_to_five() -> None:
    assert quintile_scores([10, 20, 30, 40, 50]) == [1, 2, 3, 4, 5]
    assert quintile_scores([50, 40, 30, 20, 10]) == [5, 4, 3, 2, 1]
    assert quintile_scores([10, 20, 30, 40, 50], higher_is_better=False) == [5, 4, 3, 2, 1]


def test_quintiles_handle_ties_and_tiny_populations() -> None:
    assert quintile_scores([]) == []
    assert quintile_scores([42]) == [3]
    assert quintile_scores([7, 7, 7, 7]) == [3, 3, 3, 3]
    assert quintile_scores([1, 2]) == [2, 4]
    # Equal values always share a score, wherever they sit in the input.
    s = quintile_scores([5, 1, 5, 9, 1, 5])
    assert s[0] == s[2] == s[5] and s[1] == s[4]
    assert s[1] < s[0] < s[3]


def test_ten_buyers_get_known_quintiles() -> None:
    values = list(range(1, 11))
    assert quintile_scores(values) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_known_members_get_known_scores_and_segments() -> None:
    members = [
        buyer(1, last_days=2, orders=20, spend=900_00),  # recent, frequent, big: champion
        buyer(2, last_days=10, orders=12, spend=300_00),  # recent, frequent, mid spend: loyal
        buyer(3, last_days=20, orders=3, spend=500_00),
        buyer(4, last_days=150, orders=15, spend=800_00),  # was great, gone quiet: at risk
        buyer(5, last_days=300, orders=1, spend=20_00),  # long gone, small: lost
    ]
    got = {p.member_id: p for p in profiles(members, AS_OF)}
    assert (got[1].recency, got[1].frequency, got[1].monetary) == (5, 5, 5)
    assert (got[2].recency, got[2].frequency, got[2].monetary) == (4, 3, 2)
    assert (got[3].recency, got[3].frequency, got[3].monetary) == (3, 2, 3)
    assert (got[4].recency, got[4].frequency, got[4].monetary) == (2, 4, 4)
    assert (got[5].recency, got[5].frequency, got[5].monetary) == (1, 1, 1)
    assert got[1].segment == "champions"
    assert got[2].segment == "potential"  # recent but F=3: not yet loyal
    assert got[3].segment == "need_attention"
    assert got[4].segment == "at_risk"
    assert got[5].segment == "lost"
    assert [got[i].lifecycle for i in range(1, 6)] == ["active", "active", "active", "dormant", "churned"]


def test_members_without_orders_are_new_or_prospects() -> None:
    fresh = MemberActivity(member_id=1, joined_at=ago(3))
    old = MemberActivity(member_id=2, joined_at=ago(100))
    got = profiles([fresh, old, buyer(3, 5, 2, 100_00)], AS_OF)
    assert [(p.recency, p.frequency, p.monetary) for p in got[:2]] == [(0, 0, 0), (0, 0, 0)]
    assert got[0].segment == "new" and got[0].lifecycle == "new"
    assert got[1].segment == "prospect" and got[1].lifecycle == "dormant"
    # A lone buyer is scored in the middle, not at an arbitrary end.
    assert (got[2].recency, got[2].frequency, got[2].monetary) == (3, 3, 3)


def test_first_order_recently_makes_a_member_new() -> None:
    m = MemberActivity(member_id=1, joined_at=ago(200), orders=1, spend_fen=50_00,
                       first_order_at=ago(5), last_order_at=ago(5))
    others = [buyer(i, 100 + i, 2, 100_00) for i in range(2, 6)]
    assert profiles([m, *others], AS_OF)[0].segment == "new"


def test_every_score_combination_maps_to_exactly_one_known_segment() -> None:
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        for is_new in (False, True):
            assert segment_of(r, f, m, is_new) in SEGMENTS
    assert segment_of(0, 0, 0, True) == "new"
    assert segment_of(0, 0, 0, False) == "prospect"


def test_every_member_lands_in_one_segment_and_results_are_stable() -> None:
    rng = random.Random(7)
    members = []
    for i in range(1, 201):
        orders = rng.choice([0, 0, 1, 2, 3, 5, 8, 13])
        last = rng.uniform(0, 400) if orders else None
        members.append(MemberActivity(
            member_id=i, joined_at=ago(rng.uniform(0, 500)), orders=orders,
            spend_fen=orders * rng.randint(1_00, 200_00),
            first_order_at=ago(last + 10) if last is not None else None,
            last_order_at=ago(last) if last is not None else None,
            category_spend={"零食": rng.randint(0, 5_000), "护肤": rng.randint(0, 5_000)},
            coupon_orders=rng.randint(0, orders) if orders else 0,
        ))
    first = profiles(members, AS_OF)
    assert [p.member_id for p in first] == list(range(1, 201))
    assert all(p.segment in SEGMENTS and p.lifecycle in LIFECYCLES for p in first)
    shuffled = members[:]
    rng.shuffle(shuffled)
    assert profiles(shuffled, AS_OF) == first
    assert profiles(members, AS_OF) == first


def test_lifecycle_thresholds_are_configurable() -> None:
    m = buyer(1, last_days=60, orders=3, spend=100_00)
    assert lifecycle_of(m, AS_OF, Rules()) == "active"
    assert lifecycle_of(m, AS_OF, Rules(active_days=30, churn_days=90)) == "dormant"
    assert lifecycle_of(m, AS_OF, Rules(active_days=20, churn_days=45)) == "churned"
    joined = MemberActivity(member_id=2, joined_at=ago(20))
    assert lifecycle_of(joined, AS_OF, Rules()) == "new"
    assert lifecycle_of(joined, AS_OF, Rules(new_days=10)) == "active"


def test_tags_name_favourite_categories_and_price_sensitivity() -> None:
    deal = buyer(1, 5, orders=4, spend=400_00, coupon_orders=3,
                 category_spend={"零食": 300_00, "护肤": 90_00, "饮料": 10_00})
    full = buyer(2, 5, orders=6, spend=600_00, coupon_orders=0,
                 category_spend={"护肤": 300_00, "母婴": 300_00})
    few = buyer(3, 5, orders=2, spend=50_00, coupon_orders=0)
    got = {p.member_id: p.tags for p in profiles([deal, full, few], AS_OF)}
    assert got[1] == ("fav:零食", DEAL_SEEKER)
    assert got[2] == ("fav:护肤", "fav:母婴", FULL_PRICE)  # equal shares: by name
    assert got[3] == ()  # too few orders to call full price


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="timezone"):
        profiles([], datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="once"):
        profiles([buyer(1, 5, 1, 1), buyer(1, 6, 1, 1)], AS_OF)
    with pytest.raises(ValueError):
        Rules(active_days=200, churn_days=100)
    with pytest.raises(ValueError, match="last order"):
        MemberActivity(member_id=1, joined_at=AS_OF, orders=2)
