"""The linking and member-code actions against a real database and the fake SMS server."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from actions.identity import (
    ActionLinkCodeEntered,
    ActionMemberCode,
    ActionResendLinkCode,
    ActionSendLinkCode,
    ActionUnlinkMember,
    ValidateLinkForm,
)
from actions.membership import ActionJoinMember
from loyalty import db
from loyalty.identity import service as identity
from loyalty.members.models import Member
from loyalty.membership import service as membership
from tests.actions.conftest import run
from tests.support.sms import FakeSms, shows_code

TILL_PHONE = "13800138000"  # the shop fixture's member (linked to web-visitor-1)


def test_send_enter_and_see_the_points(shop, fake_sms: FakeSms) -> None:
    r = run(ActionSendLinkCode(), sender="web-new", slots={"link_phone": TILL_PHONE})
    assert r.responses == ["utter_link_code_sent"]
    assert r.message("utter_link_code_sent")["phone"] == "138****8000" and r.slot("link_phone") is None
    code = fake_sms.last_code(TILL_PHONE)
    assert db.run(identity.enter_code, "webchat", "web-new", code).outcome == "linked"
    r = run(ActionLinkCodeEntered(), sender="web-new", intent="link_code", text="/link_code")
    said = r.message("utter_linked")
    assert said["points"] == 150 and said["coupons"] == 1 and said["name"] == "，小王"
    assert r.slot("is_member") is True
    # Nothing the action said or set holds the code.
    assert not shows_code(code, repr(r.messages) + repr(r.events))
    assert db.run(lambda s: s.get(Member, shop["member_id"]).language) == "zh"


def test_linking_in_english_makes_english_the_members_language(shop, fake_sms: FakeSms) -> None:
    run(ActionSendLinkCode(), sender="web-new", slots={"link_phone": TILL_PHONE, "language": "en"})
    assert db.run(identity.enter_code, "webchat", "web-new", fake_sms.last_code(TILL_PHONE)).outcome == "linked"
    r = run(ActionLinkCodeEntered(), sender="web-new", intent="link_code", text="/link_code", slots={"language": "en"})
    assert r.responses[0] == "utter_linked"
    assert db.run(lambda s: s.get(Member, shop["member_id"]).language) == "en"


def test_each_outcome_has_its_answer(shop, fake_sms: FakeSms) -> None:
    run(ActionSendLinkCode(), sender="web-new", slots={"link_phone": TILL_PHONE})
    r = run(ActionLinkCodeEntered(), sender="web-new", intent="link_code", text="我输入验证码了")
    assert r.responses == ["utter_link_code_sent"] and r.messages[0]["phone"] == "138****8000"
    code = fake_sms.last_code(TILL_PHONE)
    db.run(identity.enter_code, "webchat", "web-new", f"{(int(code) + 1) % 10**6:06d}")
    r = run(ActionLinkCodeEntered(), sender="web-new", intent="link_code")
    assert r.responses == ["utter_code_wrong"] and r.messages[0]["tries_left"] == 4
    r = run(ActionLinkCodeEntered(), sender="web-other", intent="link_code")
    assert r.responses == ["utter_no_link_pending"]
    r = run(ActionLinkCodeEntered(), sender="web-new", intent="link_code",
            entities=[{"entity": "link_outcome", "value": "unavailable"}])
    assert r.responses == ["utter_service_unavailable"]


def test_refusals_are_explained(shop, fake_sms: FakeSms) -> None:
    r = run(ActionSendLinkCode(), sender="web-new", slots={"link_phone": "13900009999"})
    assert r.responses == ["utter_link_not_member"] and r.messages[0]["phone"] == "139****9999"
    run(ActionSendLinkCode(), sender="web-new", slots={"link_phone": TILL_PHONE})
    r = run(ActionResendLinkCode(), sender="web-new")
    assert r.responses == ["utter_link_cooldown"] and 0 < r.messages[0]["seconds"] <= 60
    r = run(ActionSendLinkCode(), sender="web-visitor-1", slots={"link_phone": TILL_PHONE})
    assert r.responses == ["utter_already_linked"]
    r = run(ActionResendLinkCode(), sender="web-nobody")
    assert r.responses == ["utter_no_link_pending"]
    db.run(membership.signup, phone="13700137001", consent=True, channel="pos", external_id="pos-1")
    fake_sms.fail_next("isp.SYSTEM_ERROR")
    r = run(ActionSendLinkCode(), sender="web-third", slots={"link_phone": "13700137001"})
    assert r.responses == ["utter_link_sms_failed"]


def test_a_taken_number_at_signup_leads_to_a_code(shop, fake_sms: FakeSms) -> None:
    r = run(ActionJoinMember(), sender="web-new",
            slots={"consent": True, "phone": TILL_PHONE, "name": "__skip__", "birthday": "__skip__"})
    assert r.responses == ["utter_phone_taken"]
    assert r.slot("join_status") == "phone_taken" and r.slot("link_phone") == TILL_PHONE


def test_link_form_checks_the_number(shop) -> None:
    from actions.identity import MAX_PHONE_TRIES
    from tests.actions.conftest import domain

    form = ValidateLinkForm()
    out = form.validate_link_phone("手机 138 0013 8000", None, _tracker({}), domain())
    assert out == {"link_phone": TILL_PHONE}
    out = form.validate_link_phone("12345", _Quiet(), _tracker({"phone_tries": MAX_PHONE_TRIES - 1}), domain())
    assert out == {"link_phone": None, "phone_tries": MAX_PHONE_TRIES}


def test_unlink_and_member_code(shop, fake_sms: FakeSms, tmp_path: Path) -> None:
    r = run(ActionMemberCode(), sender="web-visitor-1", intent="member_code")
    said = r.message("utter_member_code")
    code = said["code"].replace(" ", "")
    assert code.startswith("88") and len(code) == 10 and said["seconds"] == 60
    png = tmp_path / "code.png"
    png.write_bytes(base64.b64decode(said["image"].split(",", 1)[1]))
    out = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == code
    r = run(ActionUnlinkMember(), sender="web-visitor-1")
    assert r.responses == ["utter_unlinked"] and r.slot("is_member") is False
    r = run(ActionMemberCode(), sender="web-visitor-1", intent="member_code")
    assert r.responses == ["utter_offer_join"]


class _Quiet:
    def utter_message(self, **kwargs: object) -> None:
        pass


def _tracker(slots: dict[str, object]):  # type: ignore[no-untyped-def]
    from rasa_sdk import Tracker

    return Tracker("web-new", slots, {"intent": {"name": "inform"}, "entities": [], "text": ""}, [], False, None,
                   {}, "action_listen")
