"""Coupons: offers, claims, exchanges for points, validity, redemption at the till, bad input."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from loyalty import db
from loyalty.config import SHANGHAI
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon, CouponCampaign, CouponHolding
from loyalty.members.models import MemberSegment
from loyalty.membership import service as membership
from tests.loyalty.corekit import T0, buy, campaign, check_points, counts, days, join, refused_cleanly, state_of


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def issued(code: str) -> int:
    with db.session(readonly=True) as s:
        return s.execute(select(CouponCampaign.issued).where(CouponCampaign.code == code)).scalar_one()


def test_welcome_coupon_on_signup(engine) -> None:
    campaign("WELCOME", audience="welcome", kind="threshold", threshold_fen=0, discount_fen=1000, valid_days=30)
    sign = db.run(membership.signup, phone="13800138000", consent=True, now=T0)
    assert sign.welcome_coupon is not None
    mine = db.run(coupons.member_coupons, sign.card.id, now=T0, readonly=True)
    assert [(c.code, c.campaign.code, c.status) for c in mine] == [(sign.welcome_coupon, "WELCOME", "active")]
    # Welcome coupons are granted, never listed for claiming.
    assert db.run(coupons.offers, sign.card.id, T0, readonly=True) == []
    assert refused_cleanly(coupons.claim, sign.card.id, "WELCOME", key="k", now=T0) == "not_open"


def test_signup_without_a_welcome_coupon_left(engine) -> None:
    campaign("WELCOME", audience="welcome", total_stock=1)
    first = db.run(membership.signup, phone="13800138001", consent=True, now=T0)
    second = db.run(membership.signup, phone="13800138002", consent=True, now=T0)
    assert first.welcome_coupon and second.welcome_coupon is None
    # The refused grant left no trace: one holding, one coupon, the stock used once.
    with db.session(readonly=True) as s:
        holdings = s.execute(select(CouponHolding.member_id, CouponHolding.count)).all()
    assert [tuple(h) for h in holdings] == [(first.card.id, 1)]
    assert issued("WELCOME") == 1


def test_signup_when_no_welcome_campaign_exists(engine) -> None:
    assert db.run(membership.signup, phone="13800138003", consent=True, now=T0).welcome_coupon is None


def test_offers_say_why_not(engine) -> None:
    m = join()
    buy(m, "120.00")
    campaign("OPEN")
    campaign("GOLDONLY", min_tier="gold")
    campaign("GONE", total_stock=0)
    campaign("COSTLY", points_cost=500)
    campaign("CHEAP", points_cost=100)
    campaign("VIP", target_segment="champions")
    campaign("LATER", claim_start=T0 + days(1), claim_end=T0 + days(5))
    campaign("OVER", claim_end=T0)
    campaign("OFF", active=False)
    campaign("GIFTED", audience="goodwill")
    db.run(coupons.claim, m, "OPEN", key="k", now=T0)
    got = {o.campaign.code: o.reason for o in db.run(coupons.offers, m, T0, readonly=True)}
    assert got == {"OPEN": "limit_reached", "GOLDONLY": "tier_too_low", "GONE": "out_of_stock",
                   "COSTLY": "insufficient_points", "CHEAP": None, "VIP": "not_in_segment"}
    with db.session() as s, s.begin():
        s.add(MemberSegment(member_id=m, recency=5, frequency=5, monetary=5, segment="champions",
                            lifecycle="active", tags=[], as_of=T0))
    got = {o.campaign.code: o.claimable for o in db.run(coupons.offers, m, T0 + days(2), readonly=True)}
    assert got["VIP"] and got["LATER"] and "OVER" not in got


def test_claim_is_once_per_key_and_a_key_is_for_one_campaign(engine) -> None:
    campaign("A", per_member_limit=3)
    campaign("B")
    m = join()
    first = db.run(coupons.claim, m, "A", key="k1", now=T0)
    again = db.run(coupons.claim, m, "a", key="k1", now=T0 + days(1))
    assert again.replayed and not first.replayed and again.coupon.code == first.coupon.code
    assert issued("A") == 1
    assert refused_cleanly(coupons.claim, m, "B", key="k1", now=T0) == "idempotency_conflict"
    # Keys are the member's own: another member may use the same one.
    n = join()
    assert not db.run(coupons.claim, n, "A", key="k1", now=T0).replayed


def test_a_claimed_coupon_lasts_to_the_end_of_its_last_local_day(engine) -> None:
    campaign("D7", valid_days=7)
    campaign("FIXED", valid_until=local(2026, 3, 20), valid_days=30)
    m = join()
    claimed_at = local(2026, 3, 2, 20, 30)
    d7 = db.run(coupons.claim, m, "D7", key="a", now=claimed_at).coupon
    assert (d7.valid_until, d7.last_day) == (local(2026, 3, 10), local(2026, 3, 9).date())
    fixed = db.run(coupons.claim, m, "FIXED", key="b", now=claimed_at).coupon
    assert (fixed.valid_until, fixed.last_day) == (local(2026, 3, 20), local(2026, 3, 19).date())
    mine = db.run(coupons.member_coupons, m, now=claimed_at, readonly=True)
    assert [c.code for c in mine] == [d7.code, fixed.code]  # soonest expiry first
    # Usable on the last second of the last day, gone at midnight.
    r = db.run(coupons.redeem, d7.code, order_ref="T1", order_amount_fen=10000, now=local(2026, 3, 9, 23, 59, 59))
    assert r.discount == "20.00"
    assert refused_cleanly(coupons.redeem, fixed.code, order_ref="T2", order_amount_fen=10000,
                           now=local(2026, 3, 20)) == "coupon_expired"
    listed = db.run(coupons.member_coupons, m, include_used=True, now=local(2026, 3, 20), readonly=True)
    assert {c.code: c.status for c in listed} == {d7.code: "redeemed", fixed.code: "expired"}
    assert db.run(coupons.member_coupons, m, now=local(2026, 3, 20), readonly=True) == []


def test_exchange_is_all_or_nothing(engine) -> None:
    campaign("SWAP", points_cost=100, total_stock=1, per_member_limit=2)
    m = join()
    buy(m, "99.00")  # 99 points: one short
    before = counts()
    assert refused_cleanly(coupons.claim, m, "SWAP", key="x", now=T0) == "insufficient_points"
    assert issued("SWAP") == 0 and counts() == before
    buy(m, "200.00")
    got = db.run(coupons.claim, m, "SWAP", key="x", now=T0)
    assert (got.points_spent, got.balance) == (100, 199)
    # Out of stock: the points stay.
    assert refused_cleanly(coupons.claim, m, "SWAP", key="y", now=T0) == "out_of_stock"
    assert check_points(m, T0) == 199


def test_exchange_refuses_points_that_expired_before_the_job_ran(engine) -> None:
    campaign("SWAP", points_cost=100)
    m = join(T0)
    buy(m, "150.00", T0)
    later = T0 + days(400)
    state = state_of(m)
    before = counts()
    assert [o.reason for o in db.run(coupons.offers, m, later, readonly=True)] == ["insufficient_points"]
    assert refused_cleanly(coupons.claim, m, "SWAP", key="x", now=later) == "insufficient_points"
    assert (state_of(m), counts()) == (state, before)


def test_redeem_kinds_and_replays(engine) -> None:
    campaign("PCT", kind="percent", percent_off=15, threshold_fen=0, discount_fen=0)
    campaign("GIFT", kind="gift", gift_sku="SKU-MUG", threshold_fen=0, discount_fen=0)
    campaign("CASH", threshold_fen=0, discount_fen=5000)
    m = join()
    pct = db.run(coupons.claim, m, "PCT", key="1", now=T0).coupon.code
    gift = db.run(coupons.claim, m, "GIFT", key="2", now=T0).coupon.code
    cash = db.run(coupons.claim, m, "CASH", key="3", now=T0).coupon.code
    r = db.run(coupons.redeem, pct.lower(), order_ref="T-1", order_amount_fen=12345, now=T0)
    assert (r.discount, r.kind, r.campaign_code) == ("18.51", "percent", "PCT")
    again = db.run(coupons.redeem, pct, order_ref="T-1", order_amount_fen=12345, now=T0 + days(1))
    assert again == r
    assert refused_cleanly(coupons.redeem, pct, order_ref="T-2", order_amount_fen=12345,
                           now=T0) == "already_redeemed"
    g = db.run(coupons.redeem, gift, order_ref="T-3", order_amount_fen=0, now=T0)
    assert (g.discount, g.gift_sku) == ("0.00", "SKU-MUG")
    # A voucher never takes off more than the order costs.
    assert db.run(coupons.redeem, cash, order_ref="T-4", order_amount_fen=3000, now=T0).discount == "30.00"


def test_redeem_refusals_write_nothing(engine) -> None:
    from loyalty.catalogue.models import Store

    campaign("C")
    campaign("SOON", valid_from=T0 + days(2), valid_days=10)
    with db.session() as s, s.begin():
        s.add(Store(code="SH01", name_zh="上海一店", name_en="Shanghai 1", city="上海"))
    m = join()
    code = db.run(coupons.claim, m, "C", key="1", now=T0).coupon.code
    soon = db.run(coupons.claim, m, "SOON", key="2", now=T0).coupon.code
    cases = [
        (dict(code="NOSUCHCODE", order_ref="T", order_amount_fen=20000), "unknown_coupon"),
        (dict(code="", order_ref="T", order_amount_fen=20000), "invalid_code"),
        (dict(code=None, order_ref="T", order_amount_fen=20000), "invalid_code"),
        (dict(code=code, order_ref="", order_amount_fen=20000), "invalid_order_ref"),
        (dict(code=code, order_ref="T" * 101, order_amount_fen=20000), "invalid_order_ref"),
        (dict(code=code, order_ref="T", order_amount_fen=-1), "invalid_amount"),
        (dict(code=code, order_ref="T", order_amount_fen="abc"), "invalid_amount"),
        (dict(code=code, order_ref="T", order_amount_fen=100.5), "invalid_amount"),
        (dict(code=code, order_ref="T", order_amount_fen=9999), "threshold_not_met"),
        (dict(code=code, order_ref="T", order_amount_fen=20000, store_code="NOWHERE"), "unknown_store"),
        (dict(code=soon, order_ref="T", order_amount_fen=20000), "not_yet_valid"),
    ]
    for kw, err in cases:
        kw = dict(kw)
        assert refused_cleanly(coupons.redeem, kw.pop("code"), now=T0, **kw) == err, kw
    assert db.run(coupons.redeem, code, order_ref="T", order_amount_fen=20000, store_code="sh01",
                  now=T0).discount == "20.00"
    # The till retrying after the coupon's expiry still gets its answer.
    replay = db.run(coupons.redeem, code, order_ref="T", order_amount_fen=20000, now=T0 + days(60))
    assert (replay.discount, replay.redeemed_at) == ("20.00", T0)


def test_expired_and_void_coupons_are_refused(engine) -> None:
    campaign("C", valid_days=5)
    m = join()
    old = db.run(coupons.claim, m, "C", key="1", now=T0).coupon.code
    assert refused_cleanly(coupons.redeem, old, order_ref="T", order_amount_fen=20000,
                           now=T0 + days(7)) == "coupon_expired"
    db.run(membership.close_account, m, actor="member", now=T0 + days(1))
    assert refused_cleanly(coupons.redeem, old, order_ref="T", order_amount_fen=20000,
                           now=T0 + days(2)) == "coupon_void"


def test_claim_refusals_write_nothing(engine) -> None:
    campaign("C", per_member_limit=1)
    campaign("HIGH", min_tier="silver")
    campaign("CLOSED", claim_end=T0)
    campaign("GIFT", audience="goodwill")
    m = join()
    db.run(coupons.claim, m, "C", key="ok", now=T0)
    for camp, key, err in [
        ("NOPE", "k", "unknown_campaign"),
        (424242, "k", "unknown_campaign"),
        ("C", "other", "limit_reached"),
        ("HIGH", "k", "tier_too_low"),
        ("CLOSED", "k", "not_open"),
        ("GIFT", "k", "not_open"),
        ("C", "", "invalid_key"),
        ("C", None, "invalid_key"),
        ("C", "k" * 101, "invalid_key"),
    ]:
        assert refused_cleanly(coupons.claim, m, camp, key=key, now=T0) == err, (camp, key)
    assert refused_cleanly(coupons.claim, 424242, "C", key="k", now=T0) == "member_not_found"


def test_campaign_fields_are_checked(engine) -> None:
    base = dict(code="X", name_zh="券", name_en="Coupon", kind="threshold", threshold_fen=10000,
                discount_fen=2000, valid_days=30)
    campaign("TAKEN")
    naive = datetime(2026, 5, 1)
    cases = [
        dict(code=""), dict(code="C" * 41), dict(code=7), dict(kind="bogus"), dict(audience="everyone"),
        dict(name_en=""), dict(discount_fen=0), dict(discount_fen=20000), dict(discount_fen="20"),
        dict(kind="percent", percent_off=0), dict(kind="percent", percent_off=100),
        dict(kind="gift", gift_sku=None), dict(total_stock=-1), dict(total_stock=True),
        dict(per_member_limit=-1), dict(points_cost=-5), dict(valid_days=None),
        dict(valid_days=0), dict(min_tier="diamond"), dict(colour="red"),
        dict(valid_until=naive), dict(claim_start=T0, claim_end=T0 - days(1)),
        dict(valid_from=T0 + days(3), valid_until=T0 + days(2)), dict(name_zh="券" * 101),
        dict(active="yes"),
    ]
    for change in cases:
        assert refused_cleanly(coupons.create_campaign, **{**base, **change}) == "invalid_campaign", change
    assert refused_cleanly(coupons.create_campaign, **{**base, "code": "taken"}) == "campaign_exists"
    ok = db.run(coupons.create_campaign, **{**base, "code": " new-1 ", "valid_until": T0 + days(60)})
    assert (ok.code, ok.threshold, ok.discount, ok.left) == ("NEW-1", "100.00", "20.00", None)


def test_goodwill_grants_pass_the_public_rules_but_not_stock(engine) -> None:
    campaign("SORRY", audience="goodwill", total_stock=2, per_member_limit=1, min_tier="gold", points_cost=500)
    m = join()
    a = db.run(coupons.grant, m, "SORRY", key="case-1", actor="agent-1", now=T0)
    b = db.run(coupons.grant, m, "SORRY", key="case-2", actor="agent-1", now=T0)
    assert a.coupon.code != b.coupon.code and a.points_spent == b.points_spent == 0
    assert db.run(coupons.grant, m, "SORRY", key="case-1", actor="agent-1", now=T0).replayed
    assert refused_cleanly(coupons.grant, m, "SORRY", key="case-3", actor="agent-1", now=T0) == "out_of_stock"
    campaign("SORRY2", audience="goodwill")
    assert refused_cleanly(coupons.grant, m, "SORRY2", key="case-3", actor="", now=T0) == "invalid_actor"
    assert refused_cleanly(coupons.grant, m, "SORRY2", key="", actor="agent-1", now=T0) == "invalid_key"
    assert refused_cleanly(coupons.grant, m, "NOPE", key="case-4", now=T0) == "unknown_campaign"
    assert check_points(m, T0) == 0
    # Two audit entries by the agent, none for the replay.
    from loyalty.audit import AuditEntry

    with db.session(readonly=True) as s:
        acts = s.execute(select(AuditEntry.actor).where(AuditEntry.action == "coupon_grant")).scalars().all()
    assert acts == ["agent-1", "agent-1"]


def test_coupons_of_a_closed_account_are_void(engine) -> None:
    campaign("C", per_member_limit=2)
    m = join()
    db.run(coupons.claim, m, "C", key="1", now=T0)
    db.run(coupons.claim, m, "C", key="2", now=T0)
    db.run(membership.close_account, m, actor="member", now=T0)
    with db.session(readonly=True) as s:
        assert s.execute(select(Coupon.status)).scalars().all() == ["void", "void"]
    assert db.run(coupons.member_coupons, m, now=T0, readonly=True) == []
