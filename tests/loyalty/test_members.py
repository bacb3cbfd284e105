"""Members: signup with consent and clean data, identities, marketing consent, closing an account."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from loyalty import db
from loyalty.audit import AuditEntry
from loyalty.catalogue.models import Store
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon
from loyalty.members import service as members
from loyalty.members.models import ChannelIdentity, Member
from loyalty.membership import service as membership
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry
from tests.loyalty.corekit import T0, buy, campaign, check_points, join, refused_cleanly


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "+86 138-0013-8000", "１３８００１３８０００", "8613800138000", "0086 138 0013 8000",
     "(138)0013.8000", " 138 0013 8000 ", "＋８６ １３８００１３８０００"],
)
def test_phone_numbers_in_the_ways_people_write_them(raw: str) -> None:
    assert members.normalize_phone(raw) == "13800138000"


@pytest.mark.parametrize(
    "raw", ["12345", "2380013800", "23800138000", "12800138000", "138001380001", "1380013800a", "", "   ",
            "+1 138 0013 8000", "86138001380", None, 13800138000, "13800138000\n1"],
)
def test_not_a_mainland_mobile_number(raw: object) -> None:
    with pytest.raises(members.InvalidInput) as exc:
        members.normalize_phone(raw)  # type: ignore[arg-type]
    assert exc.value.code == "invalid_phone"


def test_mask_phone() -> None:
    assert members.mask_phone("13812345678") == "138****5678"
    assert members.mask_phone(None) == "****"


def test_signup_keeps_what_it_was_given(engine) -> None:
    with db.session() as s, s.begin():
        s.add(Store(code="SH01", name_zh="上海一店", name_en="Shanghai 1", city="上海"))
    sign = db.run(membership.signup, phone="+86 138-0013-8000", consent=True, name="  小明 ",
                  birthday="1990-05-01", store_code="sh01", channel="wechat", external_id="openid-1", now=T0)
    c = sign.card
    assert (c.name, c.phone_masked, c.tier, c.points, c.store_code, c.joined_at, c.marketing_opt_in) == (
        "小明", "138****8000", "normal", 0, "SH01", T0, True)
    assert (c.tier_name_zh, c.tier_name_en) == ("普通会员", "Member")
    assert len(c.referral_code) == 6 and sign.referral_rewarded is False
    assert db.run(membership.by_identity, "wechat", "openid-1", readonly=True) == c
    assert db.run(membership.by_phone, "138 0013 8000", readonly=True) == c
    assert db.run(membership.by_identity, "wechat", "someone-else", readonly=True) is None
    with db.session(readonly=True) as s:
        m = s.get(Member, c.id)
        assert (m.birthday, m.consent_version, m.consent_at, m.join_channel) == (
            date(1990, 5, 1), "2026-01", T0, "wechat")
        audit = s.execute(select(AuditEntry)).scalar_one()
        # The audit trail names the act, never the phone number.
        assert audit.action == "signup" and "13800138000" not in str(audit.detail)


def test_bad_signups_write_nothing(engine) -> None:
    with db.session() as s, s.begin():
        s.add(Store(code="SH01", name_zh="上海一店", name_en="Shanghai 1", city="上海"))
    taken = db.run(membership.signup, phone="13900000001", consent=True, channel="webchat", external_id="v-1",
                   now=T0)
    ok = dict(phone="13900000002", consent=True, now=T0)
    cases = [
        (dict(consent=False), "consent_required"),
        (dict(consent=None), "consent_required"),
        (dict(consent="yes"), "consent_required"),
        (dict(phone="12345"), "invalid_phone"),
        (dict(phone="2380013800"), "invalid_phone"),
        (dict(phone=None), "invalid_phone"),
        (dict(phone="+86 139-0000-0001"), "already_member"),
        (dict(phone="１３９００００００01"), "already_member"),
        (dict(channel="webchat", external_id="v-1"), "already_member"),
        (dict(channel="fax", external_id="x"), "invalid_identity"),
        (dict(channel="wechat", external_id=""), "invalid_identity"),
        (dict(channel="wechat", external_id="x" * 129), "invalid_identity"),
        (dict(store_code="NOWHERE"), "unknown_store"),
        (dict(store_code=12), "unknown_store"),
        (dict(referral_code="NOSUCH"), "unknown_referral_code"),
        (dict(referral_code=12), "unknown_referral_code"),
        (dict(birthday=date(2030, 1, 1)), "invalid_birthday"),
        (dict(birthday=date(1850, 1, 1)), "invalid_birthday"),
        (dict(birthday="1990-13-01"), "invalid_birthday"),
        (dict(birthday="yesterday"), "invalid_birthday"),
        (dict(birthday=datetime(1990, 5, 1)), "invalid_birthday"),
        (dict(birthday=19900501), "invalid_birthday"),
        (dict(name="x" * 51), "invalid_name"),
        (dict(name="bad\x00name"), "invalid_name"),
        (dict(consent_version="v" * 21), "invalid_consent_version"),
    ]
    for change, code in cases:
        assert refused_cleanly(membership.signup, **{**ok, **change}) == code, change
    assert db.run(membership.card, taken.card.id).id == taken.card.id


def test_bind_identity(engine) -> None:
    a, b = join(), join()
    db.run(members.bind_identity, a, "webchat", "visitor-9")
    db.run(members.bind_identity, a, "webchat", "visitor-9")  # again: nothing changes
    assert db.run(membership.by_identity, "webchat", "visitor-9").id == a
    assert refused_cleanly(members.bind_identity, b, "webchat", "visitor-9") == "identity_taken"
    assert refused_cleanly(members.bind_identity, b, "carrier-pigeon", "x") == "invalid_identity"
    assert refused_cleanly(members.bind_identity, 424242, "webchat", "v") == "member_not_found"


def test_marketing_consent(engine) -> None:
    a, b, c = join(), join(), join()
    assert db.run(members.marketing_audience) == [a, b, c]
    db.run(members.set_marketing, b, False, actor="member", now=T0)
    db.run(members.set_marketing, b, False, actor="member", now=T0)  # no second audit entry
    db.run(membership.close_account, c, actor="member", now=T0)
    assert db.run(members.marketing_audience) == [a]
    assert [db.run(members.can_market, m) for m in (a, b, c, 424242)] == [True, False, False, False]
    assert db.run(membership.card, b).marketing_opt_in is False
    db.run(members.set_marketing, b, True, actor="agent-2", now=T0)
    assert db.run(members.can_market, b)
    with db.session(readonly=True) as s:
        acts = s.execute(select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.member_id == b)
                         .order_by(AuditEntry.id)).all()
    assert [tuple(x) for x in acts] == [("signup", "system"), ("marketing_opt_out", "member"),
                                        ("marketing_opt_in", "agent-2")]
    assert refused_cleanly(members.set_marketing, c, True, actor="member", now=T0) == "member_closed"
    assert refused_cleanly(members.set_marketing, a, False, actor="", now=T0) == "invalid_actor"


def test_closing_an_account_keeps_no_personal_data(engine) -> None:
    campaign("C", per_member_limit=3)
    sign = db.run(membership.signup, phone="13800138000", consent=True, name="小红", birthday=date(1992, 2, 29),
                  channel="wechat", external_id="openid-7", now=T0)
    m = sign.card.id
    db.run(members.bind_identity, m, "webchat", "visitor-7")
    buy(m, "300.00", ext="A")
    db.run(points.spend, m, 50, key="s", reason="gift", now=T0)
    db.run(coupons.claim, m, "C", key="1", now=T0)
    db.run(coupons.claim, m, "C", key="2", now=T0)
    forfeited = db.run(membership.close_account, m, actor="member", now=T0)
    assert forfeited == 250
    with db.session(readonly=True) as s:
        row = s.get(Member, m)
        assert (row.phone, row.name, row.birthday, row.status, row.marketing_opt_in, row.closed_at) == (
            None, None, None, "closed", False, T0)
        assert s.execute(select(func.count()).select_from(ChannelIdentity)).scalar_one() == 0
        assert set(s.execute(select(Coupon.status)).scalars()) == {"void"}
        kinds = s.execute(select(LedgerEntry.kind, LedgerEntry.delta).order_by(LedgerEntry.id)).all()
        assert [tuple(k) for k in kinds] == [("earn", 300), ("spend", -50), ("close", -250)]
    assert check_points(m, T0) == 0
    assert refused_cleanly(membership.card, m) == "member_not_found"
    assert db.run(membership.by_identity, "wechat", "openid-7") is None
    assert db.run(membership.by_phone, "13800138000") is None
    assert refused_cleanly(membership.close_account, m, actor="member", now=T0) == "member_closed"
    # The number and the chat can join again, as a new member with nothing of the old one.
    again = db.run(membership.signup, phone="13800138000", consent=True, channel="wechat", external_id="openid-7",
                   now=T0)
    assert again.card.id != m and again.card.points == 0 and again.card.name is None
    assert db.run(membership.by_phone, "13800138000").id == again.card.id


def test_close_account_of_unknown_member(engine) -> None:
    assert refused_cleanly(membership.close_account, 424242, actor="member", now=T0) == "member_not_found"
    m = join()
    assert refused_cleanly(membership.close_account, m, actor="", now=T0) == "invalid_actor"
