from sqlalchemy import select

from actions.membership import (
    ActionCheckMember,
    ActionCloseAccount,
    ActionJoinMember,
    ActionMemberCard,
    ActionOptOut,
    ActionReferralInfo,
    ActionStoreWelcome,
    ValidateJoinForm,
)
from actions.resume import ActionResumeAfterJoin
from loyalty import db
from loyalty.members.models import ChannelIdentity, Member
from loyalty.referrals.models import Referral
from tests.actions.conftest import run


def test_check_member_remembers_the_question_of_a_non_member(shop):
    r = run(ActionCheckMember(), sender="web-new", intent="ask_points")
    assert r.slot("is_member") is False and r.slot("requested_after_join") == "ask_points"
    r = run(ActionCheckMember(), intent="ask_points")
    assert r.slot("is_member") is True and r.slot("requested_after_join") is None
    assert r.messages == []


def test_card_masks_the_phone(shop):
    r = run(ActionMemberCard())
    m = r.message("utter_member_card")
    assert m["phone"] == "138****8000" and m["points"] == 150 and m["name"] == "小王"
    assert r.responses == ["utter_member_card"]  # no segment before the first segments run


def test_card_shows_the_segment_once_computed(shop):
    from loyalty.segments import job as segments_job

    db.run(segments_job.recompute_all)
    view = db.run(segments_job.member_segment, shop["member_id"], readonly=True)
    zh = run(ActionMemberCard()).message("utter_member_segment")
    assert zh["segment"] == view.segment_zh and zh["lifecycle"] == view.lifecycle_zh
    en = run(ActionMemberCard(), slots={"language": "en"}).message("utter_member_segment")
    assert en["segment"] == view.segment_en


def test_store_welcome_names_the_store(shop):
    r = run(ActionStoreWelcome(), sender="web-new", intent="store_visit",
            entities=[{"entity": "store_code", "value": "sh001"}])
    assert r.message("utter_store_welcome_join")["store_name"] == "上海静安店"
    assert r.slot("store_code") == "SH001" and r.slot("is_member") is False
    en = run(ActionStoreWelcome(), intent="store_visit", slots={"language": "en"},
             entities=[{"entity": "store_code", "value": "SH001"}])
    assert en.message("utter_store_welcome_member")["store_name"] == "Shanghai Jing'an"
    unknown = run(ActionStoreWelcome(), sender="web-new", entities=[{"entity": "store_code", "value": "XX9"}])
    assert unknown.responses == ["utter_welcome_join"] and unknown.slot("store_code") is None


def _validate(slot, value, **kw):
    from tests.actions.conftest import domain

    slots = {"requested_slot": slot, slot: value, **kw.pop("slots", {})}
    return run(ValidateJoinForm(), slots=slots, intent=kw.pop("intent", "inform"), text=str(value),
               entities=kw.pop("entities", []), just_set={slot: value}, **kw), domain


def test_phone_is_normalised_and_bad_ones_counted(shop):
    r, _ = _validate("phone", "+86 139-0013-9000")
    assert r.slot("phone") == "13900139000"
    r, _ = _validate("phone", "我的号码是１３９００１３９００１")
    assert r.slot("phone") == "13900139001"
    r, _ = _validate("phone", "12345")
    assert r.slot("phone") is None and r.slot("phone_tries") == 1
    assert r.message("utter_invalid_phone")["tries_left"] == 2
    r, _ = _validate("phone", "12345", slots={"phone_tries": 2})
    assert r.responses == ["utter_phone_failed"] and r.slot("phone_tries") == 3


def test_name_and_birthday_are_cleaned_or_skipped(shop):
    assert _validate("name", "我叫小李😊")[0].slot("name") == "小李"
    assert _validate("name", "__skip__")[0].slot("name") == "__skip__"
    assert _validate("birthday", "1990年5月12日")[0].slot("birthday") == "1990-05-12"
    bad = _validate("birthday", "5月12日")[0]
    assert bad.slot("birthday") is None and bad.responses == ["utter_invalid_birthday"]


def _join(sender, **slots):
    base = {"consent": True, "phone": "13700137000", "name": "__skip__", "birthday": "1992-02-29",
            "store_code": "SH001"}
    return run(ActionJoinMember(), sender=sender, slots={**base, **slots})


def test_join_creates_member_with_store_gift_and_identity(shop):
    r = _join("web-new")
    assert r.responses[:2] == ["utter_joined", "utter_welcome_gift"]
    assert r.slot("join_status") == "joined" and r.slot("is_member") is True
    assert r.slot("phone") is None  # personal data leaves the tracker
    with db.session() as s:
        m = s.execute(select(Member).where(Member.phone == "13700137000")).scalar_one()
        assert m.store.code == "SH001" and m.birthday.isoformat() == "1992-02-29" and m.name is None
        bound = select(ChannelIdentity.external_id).where(ChannelIdentity.member_id == m.id)
        assert s.execute(bound).scalar() == "web-new"


def test_join_keeps_the_conversation_language_for_outreach(shop):
    _join("web-en", language="en")
    _join("web-zh", phone="13700137001")  # the language slot says zh (or nothing yet): Chinese
    with db.session() as s:
        got = dict(s.execute(select(Member.phone, Member.language).where(Member.phone.like("1370013700%"))).all())
    assert got == {"13700137000": "en", "13700137001": "zh"}


def test_join_with_unknown_referral_code_still_joins(shop):
    r = _join("web-new", referral_code="ZZZZZZ")
    assert r.responses[:2] == ["utter_referral_code_unknown", "utter_joined"]


def test_join_with_referral_rewards_both(shop):
    r = _join("web-new", referral_code=shop["referral_code"])
    assert "utter_referral_rewarded" in r.responses
    with db.session() as s:
        assert s.execute(select(Referral.status)).scalar_one() == "rewarded"


def test_phone_of_another_member_is_refused(shop):
    r = _join("web-new", phone="13800138000")
    assert r.responses == ["utter_phone_taken"] and r.slot("join_status") == "phone_taken"


def test_declined_consent_writes_nothing(shop):
    r = _join("web-new", consent=False)
    assert r.responses == ["utter_join_no_consent"]
    with db.session() as s:
        assert s.execute(select(Member).where(Member.phone == "13700137000")).first() is None


def test_resume_answers_the_question_after_joining(shop):
    r = run(ActionResumeAfterJoin(), slots={"requested_after_join": "ask_points", "is_member": True})
    assert r.responses == ["utter_resume_after_join", "utter_points_summary"]
    assert r.slot("requested_after_join") is None


def test_opt_out_and_close_account(shop):
    assert run(ActionOptOut()).responses == ["utter_opted_out"]
    with db.session() as s:
        assert s.get(Member, shop["member_id"]).marketing_opt_in is False
    r = run(ActionCloseAccount())
    assert r.responses == ["utter_account_closed"] and r.slot("is_member") is False
    with db.session() as s:
        m = s.get(Member, shop["member_id"])
        assert m.status == "closed" and m.phone is None and m.name is None
    assert run(ActionMemberCard()).responses == ["utter_offer_join"]


def test_referral_info(shop):
    m = run(ActionReferralInfo()).message("utter_referral_info_join")
    assert m["code"] == shop["referral_code"] and m["referrer_points"] == 200


def _language(member_id: int) -> str:
    return db.run(lambda s: s.get(Member, member_id).language, readonly=True)


def test_a_member_who_keeps_chatting_in_english_is_remembered_in_english(shop):
    en, zh = [{"entity": "language", "value": "en"}], [{"entity": "language", "value": "zh"}]
    mid = shop["member_id"]
    assert _language(mid) == "zh"
    # One English message in a Chinese conversation ("thanks") is not enough.
    run(ActionMemberCard(), earlier=[zh], entities=en)
    assert _language(mid) == "zh"
    # Two in a row, with an "ok" between them that tells nothing: English from now on.
    r = run(ActionMemberCard(), earlier=[en, []], entities=en, slots={"language": "en"})
    assert r.responses == ["utter_member_card"] and _language(mid) == "en"
    run(ActionMemberCard(), earlier=[zh], entities=zh)
    assert _language(mid) == "zh"
    # A visitor who is not a member: nothing to remember, nothing breaks.
    assert run(ActionMemberCard(), sender="web-new", earlier=[en], entities=en).responses == ["utter_offer_join"]
