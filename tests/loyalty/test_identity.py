"""Linking chats to members by SMS code, WeChat UnionID and member codes, on SQLite and PostgreSQL.

The SMS goes through the real Aliyun client (signed requests) to the fake
SMS server, which records it: the tests read the code there, as a shopper
reads their phone.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from loyalty import config, db
from loyalty.audit import AuditEntry
from loyalty.errors import InvalidInput, LoyaltyError, NotFound, Refused
from loyalty.identity import member_codes, otp
from loyalty.identity import service as identity
from loyalty.identity.models import LinkChallenge, MemberCode, SendQuota
from loyalty.identity.render import member_code_png
from loyalty.members.models import ChannelIdentity, Member
from loyalty.membership import service as membership
from loyalty.sms.aliyun import signature
from loyalty.sms.gateway import SmsError
from tests.loyalty.corekit import T0, in_parallel, join, phone
from tests.support.sms import FakeSms, shows_code

pytestmark = pytest.mark.timeout(300)


def till_member() -> tuple[int, str]:
    """A member who joined at a till: a phone number, no chat linked."""
    number = phone()
    return join(phone=number, channel="pos", external_id=f"pos-{number}"), number


def send(chat: str, number: str, at: Any = T0, channel: str = "wechat") -> identity.CodeSent:
    return identity.request_link_code(channel, chat, number, now=at)


def enter(chat: str, code: str, at: Any = T0, channel: str = "wechat") -> identity.Attempt:
    return db.run(identity.enter_code, channel, chat, code, now=at)


def linked_member(chat: str, channel: str = "wechat") -> int | None:
    card = db.run(membership.by_identity, channel, chat, readonly=True)
    return card.id if card else None


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def audit_actions(member_id: int) -> list[str]:
    with db.session(readonly=True) as s:
        return list(s.execute(select(AuditEntry.action).where(AuditEntry.member_id == member_id)
                              .order_by(AuditEntry.id)).scalars())


def outcomes(results: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        if isinstance(r, LoyaltyError):
            key = r.code
        elif isinstance(r, Exception):
            raise r
        else:
            key = getattr(r, "outcome", "ok")
        out[key] = out.get(key, 0) + 1
    return out


# ------------------------------------------------------------------ the link flow


def test_link_by_sms_code(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    sent = send("o-shopper-1", number)
    assert sent.member_id == member and sent.phone_masked == f"{number[:3]}****{number[-4:]}"
    assert sent.expires_in == 300
    [msg] = fake_sms.messages(number)
    assert msg["sign_name"] == "会员助手" and msg["template_code"] == "SMS_000000"
    code = msg["params"]["code"]
    assert len(code) == 6 and code.isdigit()

    assert enter("o-shopper-1", wrong(code)) == identity.Attempt("wrong", 4, sent.phone_masked, member)
    assert db.run(identity.link_state, "wechat", "o-shopper-1", now=T0).outcome == "wrong"
    assert linked_member("o-shopper-1") is None
    # Typed the way people type it: spaces, full-width digits.
    typed = " ".join([code[:3], code[3:]]).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert enter("o-shopper-1", typed).outcome == "linked"
    assert linked_member("o-shopper-1") == member
    assert db.run(identity.link_state, "wechat", "o-shopper-1", now=T0).outcome == "linked"
    assert audit_actions(member)[-2:] == ["otp_send", "identity_link"]
    # Nothing in the database holds the code in clear.
    with db.session(readonly=True) as s:
        row = s.execute(select(LinkChallenge)).scalar_one()
        assert not shows_code(code, repr([getattr(row, c.key) for c in LinkChallenge.__table__.columns]))
        assert row.status == "used" and row.code_hash != code
        details = list(s.execute(select(AuditEntry.detail)).scalars())
    assert not shows_code(code, repr(details)) and number not in repr(details)


def test_a_number_that_is_no_member_sends_nothing(engine, fake_sms: FakeSms) -> None:
    with pytest.raises(NotFound) as e:
        send("o-nobody", phone())
    assert e.value.code == "not_a_member"
    with pytest.raises(InvalidInput):
        send("o-nobody", "12345")
    assert fake_sms.messages() == []


def test_text_that_is_not_a_code_or_without_a_challenge_is_left_alone(engine, fake_sms: FakeSms) -> None:
    assert enter("o-none", "123456").outcome == "none"
    member, number = till_member()
    send("o-none", number)
    for text_ in ("hello", "1234567", "12345", "我的积分"):
        assert enter("o-none", text_).outcome == "none"
    # An hour later a 6-digit message is an ordinary message again.
    assert enter("o-none", "123456", T0 + timedelta(hours=1, seconds=1)).outcome == "none"


def test_sixth_try_is_refused_even_with_the_right_code(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-guess", number)
    code = fake_sms.last_code(number)
    lefts = [enter("o-guess", wrong(code)) for _ in range(5)]
    assert [(a.outcome, a.tries_left) for a in lefts] == [("wrong", 4), ("wrong", 3), ("wrong", 2), ("wrong", 1),
                                                          ("locked", 0)]
    assert enter("o-guess", code).outcome == "locked"
    assert linked_member("o-guess") is None
    assert "otp_locked" in audit_actions(member)


def test_wrong_tries_count_exactly_under_concurrency(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-storm", number)
    code = fake_sms.last_code(number)
    got = outcomes(in_parallel([lambda: enter("o-storm", wrong(code)) for _ in range(12)], 12))
    assert got == {"wrong": 4, "locked": 8}
    with db.session(readonly=True) as s:
        assert s.execute(select(LinkChallenge.tries)).scalar_one() == 5
    assert enter("o-storm", code).outcome == "locked"


def test_an_expired_code_links_nothing(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-late", number)
    code = fake_sms.last_code(number)
    assert enter("o-late", code, T0 + timedelta(seconds=300)).outcome == "expired"
    assert linked_member("o-late") is None
    # A new code (after the cool-down) works.
    send("o-late", number, T0 + timedelta(seconds=301))
    fresh = fake_sms.last_code(number)
    assert enter("o-late", fresh, T0 + timedelta(seconds=302)).outcome == "linked"


def test_a_used_code_cannot_be_replayed(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("web-v1", number, channel="webchat")
    code = fake_sms.last_code(number)
    assert enter("web-v1", code, channel="webchat").outcome == "linked"
    assert enter("web-v1", code, channel="webchat").outcome == "used"
    db.run(identity.unlink, "webchat", "web-v1", now=T0)
    assert linked_member("web-v1", "webchat") is None
    assert enter("web-v1", code, channel="webchat").outcome == "used"
    assert linked_member("web-v1", "webchat") is None


def test_a_resend_replaces_the_older_code(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-resend", number)
    first = fake_sms.last_code(number)
    with pytest.raises(Refused) as e:
        identity.resend_link_code("wechat", "o-resend", now=T0 + timedelta(seconds=30))
    assert e.value.code == "code_cooldown" and e.value.params["retry_after"] == 30
    again = identity.resend_link_code("wechat", "o-resend", now=T0 + timedelta(seconds=60))
    assert again.member_id == member
    second = fake_sms.last_code(number)
    if second != first:
        assert enter("o-resend", first, T0 + timedelta(seconds=61)).outcome == "wrong"
    assert enter("o-resend", second, T0 + timedelta(seconds=62)).outcome == "linked"
    with pytest.raises(NotFound):
        identity.resend_link_code("wechat", "o-resend", now=T0 + timedelta(seconds=200))


def test_two_chats_racing_to_link_one_member(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    members_before = db.run(lambda s: s.execute(select(func.count()).select_from(Member)).scalar_one())
    send("o-racer", number)
    code_a = fake_sms.last_code(number)
    send("web-racer", number, T0 + timedelta(seconds=60), channel="webchat")
    code_b = fake_sms.last_code(number)

    def go(chat: str, code: str, channel: str) -> identity.Attempt:
        return enter(chat, code, T0 + timedelta(seconds=61), channel)

    got = in_parallel([lambda: go("o-racer", code_a, "wechat"), lambda: go("web-racer", code_b, "webchat")], 2)
    assert [a.outcome for a in got] == ["linked", "linked"]
    assert linked_member("o-racer") == member == linked_member("web-racer", "webchat")
    with db.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(Member)).scalar_one() == members_before
        assert s.execute(select(func.count()).select_from(ChannelIdentity)
                         .where(ChannelIdentity.member_id == member)).scalar_one() == 3  # pos, wechat, webchat


def test_the_same_code_entered_twice_at_once_links_once(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-double", number)
    code = fake_sms.last_code(number)
    got = outcomes(in_parallel([lambda: enter("o-double", code) for _ in range(8)], 8))
    assert got == {"linked": 1, "used": 7}
    assert audit_actions(member).count("identity_link") == 1


# ------------------------------------------------------------------ send limits


def test_cool_down_and_daily_caps(engine, fake_sms: FakeSms) -> None:
    config.use(replace(config.settings(), otp_daily_per_phone=3, otp_daily_per_identity=4))
    member, number = till_member()
    send("o-cap", number)
    with pytest.raises(Refused) as e:
        send("o-cap", number, T0 + timedelta(seconds=59))
    assert e.value.code == "code_cooldown" and e.value.params["retry_after"] == 1
    # The cool-down is per number too: another chat cannot send to it either.
    with pytest.raises(Refused) as e:
        send("o-other", number, T0 + timedelta(seconds=10))
    assert e.value.code == "code_cooldown"
    send("o-cap", number, T0 + timedelta(seconds=60))
    send("o-cap", number, T0 + timedelta(seconds=120))
    with pytest.raises(Refused) as e:
        send("o-cap", number, T0 + timedelta(seconds=180))
    assert e.value.code == "code_daily_limit" and e.value.params["scope"] == "phone"
    # The chat's own cap: one more number, then no more today.
    _, number2 = till_member()
    send("o-cap", number2, T0 + timedelta(seconds=240))
    _, number3 = till_member()
    with pytest.raises(Refused) as e:
        send("o-cap", number3, T0 + timedelta(seconds=300))
    assert e.value.code == "code_daily_limit" and e.value.params["scope"] == "chat"
    assert len(fake_sms.messages(number)) == 3 and fake_sms.messages(number3) == []
    # The next day (Asia/Shanghai) starts again.
    send("o-cap", number, T0 + timedelta(days=1))
    assert len(fake_sms.messages(number)) == 4


def test_limits_are_exact_under_concurrency(engine, fake_sms: FakeSms) -> None:
    _, number = till_member()
    got = outcomes(in_parallel([lambda i=i: send(f"o-burst-{i}", number) for i in range(16)], 16))
    assert got == {"ok": 1, "code_cooldown": 15}
    assert len(fake_sms.messages(number)) == 1
    # Without a cool-down, the daily cap alone: exactly 5 of 16.
    config.use(replace(config.settings(), otp_cooldown_seconds=0))
    _, number2 = till_member()
    got = outcomes(in_parallel([lambda i=i: send(f"o-cap-{i}", number2) for i in range(16)], 16))
    assert got == {"ok": 5, "code_daily_limit": 11}
    assert len(fake_sms.messages(number2)) == 5
    with db.session(readonly=True) as s:
        counts = sorted(s.execute(select(SendQuota.count)).scalars())
    assert counts[-1] == 5


def test_a_refused_sms_is_audited_and_leaves_no_usable_code(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    fake_sms.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    with pytest.raises(SmsError) as e:
        send("o-sms-down", number)
    assert e.value.provider_code == "isv.BUSINESS_LIMIT_CONTROL" and e.value.retryable
    assert audit_actions(member)[-2:] == ["otp_send", "otp_send_failed"]
    assert enter("o-sms-down", "123456").outcome == "expired"


def test_no_code_reaches_the_logs(engine, fake_sms: FakeSms, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    member, number = till_member()
    send("o-logs", number)
    code = fake_sms.last_code(number)
    enter("o-logs", wrong(code))
    enter("o-logs", code)
    fake_sms.fail_next()
    with pytest.raises(SmsError):
        send("o-logs-2", number, T0 + timedelta(seconds=61))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "via the fake SMS gateway" in logged and f"{number[:3]}****{number[-4:]}" in logged
    assert not shows_code(code, logged) and number not in logged


# ------------------------------------------------------------------ unlink, agents, UnionID, closing


def test_unlink(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-unlink", number)
    enter("o-unlink", fake_sms.last_code(number))
    assert db.run(identity.unlink, "wechat", "o-unlink", now=T0) == member
    assert linked_member("o-unlink") is None
    assert audit_actions(member)[-1] == "identity_unlink"
    with pytest.raises(NotFound) as e:
        db.run(identity.unlink, "wechat", "o-unlink", now=T0)
    assert e.value.code == "not_linked"
    assert db.run(membership.card, member, readonly=True).phone_masked.endswith(number[-4:])


def test_an_agent_links_a_shopper_whose_number_changed(engine, fake_sms: FakeSms) -> None:
    member, old = till_member()
    new = phone()
    sent = identity.agent_link("wechat", "o-moved", member_id=member, new_phone=new, agent="agent:alice", now=T0)
    assert sent.phone_masked.endswith(new[-4:]) and fake_sms.messages(old) == []
    assert enter("o-moved", fake_sms.last_code(new)).outcome == "linked"
    assert linked_member("o-moved") == member
    with db.session(readonly=True) as s:
        assert s.get(Member, member).phone == new
        who = list(s.execute(select(AuditEntry.actor, AuditEntry.action).where(AuditEntry.member_id == member)
                             .order_by(AuditEntry.id)))
    assert [tuple(w) for w in who[-4:]] == [("agent:alice", "link_started_by_agent"), ("agent:alice", "otp_send"),
                                            ("agent:alice", "phone_change"), ("agent:alice", "identity_link")]
    other, taken = till_member()
    with pytest.raises(Refused) as e:
        identity.agent_link("wechat", "o-moved-2", member_id=member, new_phone=taken, agent="agent:alice",
                            now=T0 + timedelta(seconds=61))
    assert e.value.code == "phone_taken"


def test_unionid_links_the_brands_other_wechat_identities(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    assert db.run(identity.note_unionid, "o-account-a", "u-1", now=T0) == identity.UnionNote(None, False)
    send("o-account-a", number)
    enter("o-account-a", fake_sms.last_code(number))
    with db.session(readonly=True) as s:
        assert s.execute(select(ChannelIdentity.union_id)
                         .where(ChannelIdentity.external_id == "o-account-a")).scalar_one() == "u-1"
    # The same person in the brand's mini program or second account: linked by WeChat's word.
    assert db.run(identity.note_unionid, "o-app-b", "u-1", now=T0) == identity.UnionNote(member, True)
    assert linked_member("o-app-b") == member
    assert audit_actions(member)[-1] == "identity_link"
    assert db.run(identity.note_unionid, "o-app-b", "u-1", now=T0) == identity.UnionNote(member, False)
    # An unlink sticks: the UnionID does not undo it.
    db.run(identity.unlink, "wechat", "o-app-b", now=T0)
    assert db.run(identity.note_unionid, "o-app-b", "u-1", now=T0) == identity.UnionNote(None, False)
    assert linked_member("o-app-b") is None
    # Unlinked before WeChat told its UnionID: the first look-up after it does not link it back.
    send("o-app-c", number, T0 + timedelta(seconds=60))
    enter("o-app-c", fake_sms.last_code(number), T0 + timedelta(seconds=61))
    db.run(identity.unlink, "wechat", "o-app-c", now=T0)
    assert db.run(identity.note_unionid, "o-app-c", "u-1", now=T0) == identity.UnionNote(None, False)
    assert linked_member("o-app-c") is None
    # Another person's UnionID links nothing.
    assert db.run(identity.note_unionid, "o-stranger", "u-2", now=T0) == identity.UnionNote(None, False)


def test_closing_the_account_erases_codes_and_links(engine, fake_sms: FakeSms) -> None:
    member, number = till_member()
    send("o-close", number)
    enter("o-close", fake_sms.last_code(number))
    db.run(member_codes.issue, member, now=T0)
    db.run(membership.close_account, member, actor="test", now=T0)
    with db.session(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(MemberCode)).scalar_one() == 0
        assert set(s.execute(select(LinkChallenge.status, LinkChallenge.new_phone)).all()) == {("void", None)}
    assert linked_member("o-close") is None


# ------------------------------------------------------------------ member codes


def test_member_code_resolves_once_within_its_minute(engine, fake_sms: FakeSms, tmp_path: Path) -> None:
    member, _ = till_member()
    other, _ = till_member()
    shown = db.run(member_codes.issue, member, now=T0)
    assert shown.code.startswith("88") and len(shown.code) == 10 and shown.seconds == 60
    assert shown.spaced == f"88 {shown.code[2:6]} {shown.code[6:]}"
    # The picture a phone shows decodes to exactly that code.
    png = tmp_path / "code.png"
    png.write_bytes(member_code_png(shown.code))
    decoded = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert decoded.stdout.strip() == shown.code
    # Claimed for someone else: refused, and not used up.
    with pytest.raises(Refused) as e:
        db.run(member_codes.resolve, shown.code, source="pos", member_id=other, now=T0 + timedelta(seconds=5))
    assert e.value.code == "member_code_mismatch"
    assert db.run(member_codes.resolve, shown.code, source="pos", now=T0 + timedelta(seconds=30)) == member
    with pytest.raises(Refused) as e:
        db.run(member_codes.resolve, shown.code, source="pos", now=T0 + timedelta(seconds=31))
    assert e.value.code == "member_code_used"
    # After its minute a code is refused.
    later = db.run(member_codes.issue, member, now=T0 + timedelta(seconds=100))
    with pytest.raises(Refused) as e:
        db.run(member_codes.resolve, later.code, source="pos", now=T0 + timedelta(seconds=160))
    assert e.value.code == "member_code_expired"
    with pytest.raises(NotFound):
        db.run(member_codes.resolve, "8800000000" if later.code != "8800000000" else "8800000001", source="pos",
               now=T0 + timedelta(seconds=160))
    for bad in ("12345", "9912345678", "88123456789", 8812345678, None, "88１２３４５６７８"):
        with pytest.raises(InvalidInput):
            db.run(member_codes.resolve, bad, source="pos", now=T0)


def test_a_refreshed_member_code_retires_the_old_one(engine, fake_sms: FakeSms) -> None:
    member, _ = till_member()
    first = db.run(member_codes.issue, member, now=T0)
    second = db.run(member_codes.issue, member, now=T0 + timedelta(seconds=1))
    assert first.code != second.code
    with pytest.raises(Refused) as e:
        db.run(member_codes.resolve, first.code, source="pos", now=T0 + timedelta(seconds=2))
    assert e.value.code in ("member_code_expired", "member_code_used")
    assert db.run(member_codes.resolve, second.code, source="pos", now=T0 + timedelta(seconds=2)) == member


def test_a_member_code_scanned_by_many_tills_at_once_resolves_once(engine, fake_sms: FakeSms) -> None:
    member, _ = till_member()
    shown = db.run(member_codes.issue, member, now=T0)
    got = outcomes(in_parallel([
        lambda: db.run(member_codes.resolve, shown.code, source="pos", now=T0 + timedelta(seconds=1))
        for _ in range(16)], 16))
    assert got == {"ok": 1, "member_code_used": 15}


def test_member_code_is_a_hmac_of_the_time_step_and_a_secret(engine, fake_sms: FakeSms) -> None:
    member, _ = till_member()
    shown = db.run(member_codes.issue, member, now=T0)
    with db.session(readonly=True) as s:
        row = s.execute(select(MemberCode)).scalar_one()
        salt = s.execute(text("SELECT salt FROM member_code_keys")).scalar_one()
    assert member_codes.code_for(salt, member, row.step, row.counter) == shown.code
    # Another secret gives another code: the salt alone (a database copy) is not enough.
    config.use(replace(config.settings(), identity_secret="another-secret-0123456789"))
    assert member_codes.code_for(salt, member, row.step, row.counter) != shown.code


# ------------------------------------------------------------------ pieces


def test_aliyun_signature_matches_the_documented_examples() -> None:
    sms_example = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
    }
    assert signature(sms_example, "testSecret", "GET") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    rpc_example = {
        "Format": "XML", "AccessKeyId": "testid", "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
        "Version": "2014-05-26", "Timestamp": "2016-02-23T12:46:24Z",
    }
    assert signature(rpc_example, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_the_fake_sms_server_checks_signatures(fake_sms: FakeSms) -> None:
    from loyalty.sms.aliyun import AliyunSms

    forged = AliyunSms(config.SmsSettings(provider="fake", fake_url=fake_sms.url))
    forged._secret = "not-the-secret"
    with pytest.raises(SmsError) as e:
        forged.send_code("13800138000", "123456")
    assert e.value.provider_code == "SignatureDoesNotMatch"
    assert fake_sms.messages() == [] and fake_sms.refused() == 1


def test_typed_codes() -> None:
    assert otp.typed_code("123456") == "123456"
    assert otp.typed_code(" 123 456 ") == "123456"
    assert otp.typed_code("１２３４５６") == "123456"
    assert otp.typed_code("123-456") == "123456"
    for no in ("12345", "1234567", "abc123", "", None, "验证码123456"):
        assert otp.typed_code(no) is None


def test_sms_and_identity_settings_from_the_environment(tmp_path: Path) -> None:
    s = config.from_env({})
    assert s.sms.provider == "fake" and s.sms.url == "http://127.0.0.1:8090/" and s.identity_secret is None
    s = config.from_env({"SMS_ALIYUN_ACCESS_KEY_ID": "LTAI", "SMS_ALIYUN_ACCESS_KEY_SECRET": "k",
                         "SMS_SIGN_NAME": "某某零售", "SMS_TEMPLATE_CODE": "SMS_123", "LOYALTY_OTP_MAX_TRIES": "3",
                         "LOYALTY_MEMBER_CODE_PREFIX": "66"})
    assert (s.sms.provider, s.sms.url, s.sms.sign_name, s.sms.template_code) == (
        "aliyun", "https://dysmsapi.aliyuncs.com/", "某某零售", "SMS_123")
    assert s.otp_max_tries == 3 and s.member_code_prefix == "66"
    for bad in ({"SMS_PROVIDER": "aliyun"}, {"SMS_PROVIDER": "twilio"}, {"LOYALTY_MEMBER_CODE_PREFIX": "8a"},
                {"LOYALTY_MEMBER_CODE_PREFIX": "8²"}):
        with pytest.raises(config.SettingsError):
            config.from_env(bad)
    # The development secret: created once, owner-only, shared by every process using the folder.
    from loyalty.identity import keys

    config.use(config.Settings(var_dir=str(tmp_path)))
    first = keys.secret()
    assert keys.secret() == first and len(first) == 64
    assert (tmp_path / "identity.secret").stat().st_mode & 0o777 == 0o600
    config.use(config.Settings(identity_secret="short"))
    with pytest.raises(config.SettingsError):
        keys.secret()


def test_a_code_counts_as_shown_only_as_a_number_of_its_own() -> None:
    assert shows_code("005383", 'code 005383') and shows_code("005383", '{"text": "005383"}')
    assert shows_code("005383", "验证码005383。")
    assert not shows_code("005383", '{"confidence": 0.0006175200538340419}')
    assert not shows_code("005383", '"timestamp": 1796206918.005383,') and not shows_code("005383", "10053830")
