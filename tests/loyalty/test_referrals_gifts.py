"""Referrals (rewarded once, never to oneself) and birthday coupons (once a year, 29 February handled)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from sqlalchemy import func, select

from loyalty import config, db
from loyalty.config import SHANGHAI, Settings, TierDef
from loyalty.coupons import gifts
from loyalty.coupons.models import Coupon
from loyalty.membership import service as membership
from loyalty.points.models import LedgerEntry
from loyalty.referrals import service as referrals
from loyalty.referrals.models import Referral
from tests.loyalty.corekit import (
    T0,
    buy,
    campaign,
    check_points,
    days,
    in_parallel,
    join,
    refused_cleanly,
)


def balance(member_id: int, at: datetime = T0) -> int:
    return check_points(member_id, at)


def code_of(member_id: int) -> str:
    return db.run(membership.card, member_id).referral_code


def referral_rows() -> list[tuple[int, int, str]]:
    with db.session(readonly=True) as s:
        rows = s.execute(select(Referral.referrer_id, Referral.referee_id, Referral.status)
                         .order_by(Referral.id)).all()
    return [tuple(r) for r in rows]


def test_both_rewarded_once_when_the_friend_joins(engine) -> None:
    a = join()
    sign = db.run(membership.signup, phone="13700000001", consent=True, referral_code=code_of(a).lower(), now=T0)
    b = sign.card.id
    assert sign.referral_rewarded
    assert (balance(a), balance(b)) == (200, 100)
    assert referral_rows() == [(a, b, "rewarded")]
    info = db.run(referrals.info, a)
    assert (info.code, info.friends_joined, info.friends_rewarded, info.trigger) == (code_of(a), 1, 1, "join")
    # Later orders of the friend reward nobody again.
    buy(b, "10.00")
    assert (balance(a), balance(b)) == (200, 110)
    # One reward per friend: a second code is refused.
    c = join()
    assert refused_cleanly(referrals.apply_code, b, code_of(c), now=T0) == "already_referred"


def test_with_the_first_order_trigger_rewards_wait_for_the_first_order(engine) -> None:
    config.use(Settings(referral_trigger="first_order"))
    a = join()
    sign = db.run(membership.signup, phone="13700000002", consent=True, referral_code=code_of(a), now=T0)
    b = sign.card.id
    assert not sign.referral_rewarded
    assert (balance(a), balance(b)) == (0, 0)
    assert db.run(referrals.info, a).friends_rewarded == 0
    buy(b, "50.00", T0 + days(1))
    assert (balance(a, T0 + days(1)), balance(b, T0 + days(1))) == (200, 150)
    buy(b, "50.00", T0 + days(2))
    assert (balance(a, T0 + days(2)), balance(b, T0 + days(2))) == (200, 200)
    assert referral_rows() == [(a, b, "rewarded")]
    with db.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(LedgerEntry)
                         .where(LedgerEntry.kind == "referral")).scalar_one() == 2


def test_a_referrer_who_left_gets_nothing_but_the_friend_does(engine) -> None:
    config.use(Settings(referral_trigger="first_order"))
    a = join()
    b = db.run(membership.signup, phone="13700000003", consent=True, referral_code=code_of(a), now=T0).card.id
    db.run(membership.close_account, a, actor="member", now=T0)
    buy(b, "10.00", T0 + days(1))
    assert (balance(a, T0 + days(1)), balance(b, T0 + days(1))) == (0, 110)


def test_adding_a_code_after_joining(engine) -> None:
    a, b = join(), join()
    assert db.run(referrals.apply_code, b, f" {code_of(a).lower()} ", now=T0) is True
    assert (balance(a), balance(b)) == (200, 100)
    assert refused_cleanly(referrals.apply_code, b, code_of(a), now=T0) == "already_referred"


def test_referral_refusals_write_nothing(engine) -> None:
    a, b = join(), join()
    assert refused_cleanly(referrals.apply_code, a, code_of(a), now=T0) == "self_referral"
    assert refused_cleanly(referrals.apply_code, a, "NOSUCH", now=T0) == "unknown_referral_code"
    assert refused_cleanly(referrals.apply_code, a, "", now=T0) == "unknown_referral_code"
    assert refused_cleanly(referrals.apply_code, a, None, now=T0) == "unknown_referral_code"
    assert refused_cleanly(referrals.apply_code, 424242, code_of(a), now=T0) == "member_not_found"
    gone = code_of(b)
    db.run(membership.close_account, b, actor="member", now=T0)
    assert refused_cleanly(referrals.apply_code, a, gone, now=T0) == "unknown_referral_code"
    assert refused_cleanly(membership.signup, phone="13700000009", consent=True, referral_code=gone,
                           now=T0) == "unknown_referral_code"
    assert refused_cleanly(referrals.record, a, a, T0) == "self_referral"
    assert refused_cleanly(referrals.info, b) == "member_not_found"


def test_two_codes_at_once_reward_one_referral(engine) -> None:
    friend = join()
    referrers = [join() for _ in range(6)]
    results = in_parallel([lambda r=r: db.run(referrals.apply_code, friend, code_of(r), now=T0)
                           for r in referrers])
    assert sum(r is True for r in results) == 1
    assert all(getattr(r, "code", None) == "already_referred" for r in results if r is not True)
    assert len(referral_rows()) == 1
    assert balance(friend) == 100 and sum(balance(r) for r in referrers) == 200


# --- birthdays ----------------------------------------------------------------------------


def birthday_settings() -> Settings:
    tiers = (TierDef("normal", "普通会员", "Member", 0, 1.0, "BDAY"),
             *config.DEFAULT_TIERS[1:])
    return replace(Settings(), tiers=tiers)


def noon(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 12, tzinfo=SHANGHAI)


def coupon_count(member_id: int) -> int:
    with db.session(readonly=True) as s:
        return s.execute(select(func.count()).select_from(Coupon).where(Coupon.member_id == member_id)).scalar_one()


def test_a_birthday_coupon_once_a_year(engine) -> None:
    config.use(birthday_settings())
    campaign("BDAY", audience="birthday", threshold_fen=0, discount_fen=3000)  # per-member limit 1
    m = join(birthday=date(1990, 5, 1))
    assert db.run(gifts.birthday_members, date(2026, 5, 1)) == [m]
    assert db.run(gifts.birthday_members, date(2026, 5, 2)) == []
    assert db.run(gifts.grant_birthday, m, date(2026, 4, 30)) is None
    first = db.run(gifts.grant_birthday, m, date(2026, 5, 1))
    assert first is not None
    assert db.run(gifts.grant_birthday, m, date(2026, 5, 1)) == first  # the job ran twice
    assert coupon_count(m) == 1
    second = db.run(gifts.grant_birthday, m, date(2027, 5, 1))
    assert second not in (None, first) and coupon_count(m) == 2


def test_a_29_february_birthday(engine) -> None:
    config.use(birthday_settings())
    campaign("BDAY", audience="birthday", threshold_fen=0, discount_fen=3000)
    m = join(birthday=date(2000, 2, 29))
    assert gifts.birthday_in_year(date(2000, 2, 29), 2027) == date(2027, 2, 28)
    assert gifts.birthday_in_year(date(2000, 2, 29), 2028) == date(2028, 2, 29)
    assert db.run(gifts.birthday_members, date(2027, 2, 28)) == [m]
    assert db.run(gifts.birthday_members, date(2027, 3, 1)) == []
    assert db.run(gifts.birthday_members, date(2028, 2, 28)) == []
    assert db.run(gifts.birthday_members, date(2028, 2, 29)) == [m]
    assert db.run(gifts.grant_birthday, m, date(2027, 2, 28)) is not None
    assert db.run(gifts.grant_birthday, m, date(2028, 2, 28)) is None
    assert db.run(gifts.grant_birthday, m, date(2028, 2, 29)) is not None
    assert coupon_count(m) == 2


def test_no_birthday_coupon_without_a_benefit_or_a_member(engine) -> None:
    campaign("BIRTHDAY-SILVER", audience="birthday", threshold_fen=0, discount_fen=3000)
    plain = join(birthday=date(1990, 5, 1))  # default tiers: normal members have no birthday coupon
    assert db.run(gifts.grant_birthday, plain, date(2026, 5, 1)) is None
    silver = join(birthday=date(1991, 5, 1))
    buy(silver, "2000.00")
    assert db.run(gifts.grant_birthday, silver, date(2026, 5, 1)) is not None
    nobody = join()
    assert db.run(gifts.grant_birthday, nobody, date(2026, 5, 1)) is None
    gone = join(birthday=date(1990, 5, 1))
    db.run(membership.close_account, gone, actor="member", now=T0)
    assert db.run(gifts.birthday_members, date(2026, 5, 1)) == [plain, silver]
    assert db.run(gifts.grant_birthday, gone, date(2026, 5, 1)) is None
    assert db.run(gifts.grant_birthday, 424242, date(2026, 5, 1)) is None


def test_a_birthday_campaign_out_of_stock_grants_nothing_and_writes_nothing(engine) -> None:
    from tests.loyalty.corekit import counts

    config.use(birthday_settings())
    campaign("BDAY", audience="birthday", threshold_fen=0, discount_fen=3000, total_stock=0)
    m = join(birthday=date(1990, 5, 1))
    before = counts()
    assert db.run(gifts.grant_birthday, m, date(2026, 5, 1)) is None
    assert counts() == before
