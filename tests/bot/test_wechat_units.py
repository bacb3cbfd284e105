"""Pure parts of the WeChat channel: settings, reply XML, splitting, classification."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
import xmltodict
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from wechatpy import parse_message

from bot.settings import SettingsError, load_wechat_settings, parse_mapping
from bot.wechat.channel import WeChatInput
from bot.wechat.dedup import dedup_key
from bot.wechat.dev.simulate import WeChatSide
from bot.wechat.inbound import classify, intent_message, neutralise
from bot.wechat.outbound import render_buttons
from bot.wechat.security import CallbackRejected, CallbackSecurity
from bot.wechat.xml import cdata, pack_texts, render_text_reply, split_text, utf8_len
from tests.bot.conftest import AES_KEY, APP_ID, TOKEN

# ---------------------------------------------------------------- settings


def test_settings_from_env_with_defaults() -> None:
    s = load_wechat_settings(
        {
            "WECHAT_TOKEN": "t",
            "WECHAT_AES_KEY": AES_KEY,
            "WECHAT_MENU_INTENTS": "MENU_POINTS=ask_points, MENU_COUPONS=ask_coupons",
        }
    )
    assert (s.token, s.aes_key, s.passive_wait, s.max_text_bytes) == ("t", AES_KEY, 4.0, 2048)
    assert dict(s.menu_intents) == {"MENU_POINTS": "ask_points", "MENU_COUPONS": "ask_coupons"}
    assert s.api_base_url == "https://api.weixin.qq.com/cgi-bin/" and not s.can_send


@pytest.mark.parametrize(
    "env, needle",
    [
        ({}, "WECHAT_TOKEN"),
        ({"WECHAT_TOKEN": "t", "WECHAT_AES_KEY": "short"}, "WECHAT_AES_KEY"),
        ({"WECHAT_TOKEN": "t", "WECHAT_AES_KEY": "!" * 43}, "WECHAT_AES_KEY"),
        ({"WECHAT_TOKEN": "t", "WECHAT_PASSIVE_WAIT": "soon"}, "WECHAT_PASSIVE_WAIT"),
        ({"WECHAT_TOKEN": "t", "WECHAT_MENU_INTENTS": "MENU_POINTS"}, "WECHAT_MENU_INTENTS"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load_wechat_settings(env)


def test_credentials_override_env_and_strings_are_coerced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", "from-env")
    monkeypatch.setenv("WECHAT_APP_ID", "wx-env")
    channel = WeChatInput.from_credentials(
        {
            "token": "from-yml",
            "encoding_aes_key": AES_KEY,
            "passive_wait": "3.5",
            "menu_intents": {"MENU_X": "ask_x"},
            "redis_url": None,
        }
    )
    s = channel.settings
    assert (s.token, s.app_id, s.aes_key, s.passive_wait) == ("from-yml", "wx-env", AES_KEY, 3.5)
    assert dict(s.menu_intents) == {"MENU_X": "ask_x"} and s.redis_url is None
    assert WeChatInput.name() == "wechat"


def test_unknown_credentials_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WECHAT_TOKEN", "t")
    with pytest.raises(SettingsError, match="tokn"):
        WeChatInput.from_credentials({"tokn": "typo"})


def test_parse_mapping_ignores_blanks() -> None:
    assert parse_mapping(" A=b, ,C = d ") == {"A": "b", "C": "d"}


# ---------------------------------------------------------------- XML and splitting


@given(st.text())
def test_cdata_round_trips_any_text(text: str) -> None:
    xml = render_text_reply("o1", "gh_1", text, create_time=1)
    parsed = xmltodict.parse(xml, strip_whitespace=False)["xml"]
    expected = "".join(ch for ch in text if ch == "\t" or ch == "\n" or ch == "\r" or ch >= " ")
    expected = expected.replace("\ufffe", "").replace("\uffff", "")
    # XML parsers normalise line ends; content is otherwise exact.
    got = parsed.get("Content") or ""
    assert got == expected.replace("\r\n", "\n").replace("\r", "\n")
    assert parsed["MsgType"] == "text"


def test_cdata_splits_the_terminator() -> None:
    assert cdata("a]]>b") == "<![CDATA[a]]]]><![CDATA[>b]]>"


@hsettings(max_examples=200)
@given(st.text(min_size=0, max_size=3000), st.integers(min_value=64, max_value=600))
def test_split_text_respects_the_limit_and_loses_nothing(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < utf8_len(p) <= limit for p in pieces)
    def squash(s: str) -> str:
        return "".join(s.split())

    assert squash("".join(pieces)) == squash(text)


def test_split_prefers_line_breaks() -> None:
    text = ("第一段。" * 20 + "\n") * 3
    pieces = split_text(text, 300)
    assert all(p.endswith("。") for p in pieces)


def test_pack_joins_short_texts_and_keeps_order() -> None:
    packed = pack_texts(["一", "二", "三" * 700], 2048)
    assert packed == ["一\n\n二", "三" * 682, "三" * 18]


def test_buttons_render_as_numbered_choices() -> None:
    text, payloads = render_buttons(
        "选一个",
        [
            {"title": "查积分", "payload": "/ask_points"},
            {"title": "官网", "url": "https://example.com"},
            {"title": "领券", "payload": "/ask_coupons"},
        ],
    )
    assert text == "选一个\n1. 查积分\n官网: https://example.com\n2. 领券"
    assert payloads == [("查积分", "/ask_points"), ("领券", "/ask_coupons")]


# ---------------------------------------------------------------- security (no HTTP)


def _security(**kw: object) -> CallbackSecurity:
    return CallbackSecurity(load_wechat_settings({}, token=TOKEN, app_id=APP_ID, aes_key=AES_KEY, **kw))


def test_aes_callback_for_another_app_cannot_be_decrypted() -> None:
    other = WeChatSide(TOKEN, "wx-other-app", AES_KEY)
    params, body = other.sign(other.text("o1", "hi"), aes=True)
    with pytest.raises(CallbackRejected) as info:
        _security().open_callback(params, body)
    assert info.value.status == 400


def test_clock_skew_is_configurable() -> None:
    side = WeChatSide(TOKEN, APP_ID, AES_KEY)
    params, body = side.sign(side.text("o1", "hi"), timestamp=int(time.time()) - 100)
    _security(max_clock_skew=300).open_callback(params, body)
    with pytest.raises(CallbackRejected, match="stale"):
        _security(max_clock_skew=60).open_callback(params, body)


def test_unknown_encrypt_type_is_refused() -> None:
    side = WeChatSide(TOKEN, APP_ID, AES_KEY)
    params, body = side.sign(side.text("o1", "hi"))
    with pytest.raises(CallbackRejected):
        _security().open_callback(params | {"encrypt_type": "rot13"}, body)


# ---------------------------------------------------------------- classification


def test_intent_message_and_neutralise() -> None:
    assert intent_message("ask_points") == "/ask_points"
    assert intent_message("store_visit", {"store_code": "门店1"}) == '/store_visit{"store_code":"门店1"}'
    assert neutralise("  /restart ") == "／restart"
    assert neutralise("积分/points") == "积分/points"


def test_dedup_keys() -> None:
    side = WeChatSide(TOKEN, APP_ID)
    text = parse_message(side.text("o1", "hi", msg_id=42))
    event = parse_message(side.subscribe("o1", "SH001", create_time=1700000000))
    assert dedup_key(text) == "msg:42"
    assert dedup_key(event) == "evt:o1:1700000000:subscribe_scan"


def test_unknown_event_types_are_ignored_and_unknown_messages_answered() -> None:
    side = WeChatSide(TOKEN, APP_ID)
    unknown_event = parse_message(side.event("o1", "brand_new_event"))
    assert classify(unknown_event, {}).action == "ignore"
    unknown_message = parse_message(side._xml("o1", "hologram", {"MsgId": "1"}, None))
    assert classify(unknown_message, {}).action == "reply"


def test_a_subscription_popup_is_classified_with_its_accepted_templates_only() -> None:
    side = WeChatSide(TOKEN, APP_ID)
    xml = side.subscribe_popup("o1", [("T-A", "accept"), ("T-B", "reject"), ("T-C", "accept")], create_time=7)
    inbound = classify(parse_message(xml), {})
    assert (inbound.action, inbound.window, inbound.accepted) == ("ignore", None, ("T-A", "T-C"))
    assert dedup_key(parse_message(xml)) == "evt:o1:7:subscribe_msg_popup_event"
    assert classify(parse_message(side.subscribe_popup("o1", [("T-A", "accept")])), {}).accepted == ("T-A",)
    # Shapes WeChat does not send must not break the channel: nothing is accepted.
    for body in ("", "<SubscribeMsgPopupEvent>x</SubscribeMsgPopupEvent>",
                 "<SubscribeMsgPopupEvent><List>x</List></SubscribeMsgPopupEvent>",
                 "<SubscribeMsgPopupEvent><List><TemplateId></TemplateId>"
                 "<SubscribeStatusString>accept</SubscribeStatusString></List></SubscribeMsgPopupEvent>"):
        odd = side.event("o1", "subscribe_msg_popup_event").replace("</xml>", body + "</xml>")
        assert classify(parse_message(odd), {}).accepted == ()


def test_a_subscription_change_is_classified_with_its_refused_templates_and_when() -> None:
    side = WeChatSide(TOKEN, APP_ID)
    for element in ("SubscribeMsgPopupEvent", "SubscribeMsgChangeEvent"):  # WeChat's sample uses the first
        xml = side.subscribe_change("o1", ["T-A", "T-B", "T-A"], create_time=1_700_000_000, element=element)
        inbound = classify(parse_message(xml), {})
        assert (inbound.action, inbound.window, inbound.accepted, inbound.refused) == (
            "ignore", None, (), ("T-A", "T-B"))
        assert inbound.occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert classify(parse_message(side.subscribe_change("o1", ["T-A"])), {}).refused == ("T-A",)
    # A pop-up's "reject" refuses nothing: it only declines a new credit.
    assert classify(parse_message(side.subscribe_popup("o1", [("T-A", "reject")])), {}).refused == ()
    # Odd shapes and a malformed time must not break the channel.
    odd = side.event("o1", "subscribe_msg_change_event").replace(
        "</xml>", "<SubscribeMsgChangeEvent>x</SubscribeMsgChangeEvent></xml>")
    assert classify(parse_message(odd), {}).refused == ()
    bad_time = re.sub(r"<CreateTime>\d+</CreateTime>", "<CreateTime>soon</CreateTime>",
                      side.subscribe_change("o1", ["T-A"]))
    assert classify(parse_message(bad_time), {}).occurred_at is None


def test_a_subscription_sent_report_reads_each_template_and_status() -> None:
    side = WeChatSide(TOKEN, APP_ID)
    xml = side.subscribe_sent("o1", [("T-A", "success"), ("T-B", "failed:user block")], create_time=1_700_000_000)
    got = classify(parse_message(xml), {})
    assert (got.action, got.sent) == ("ignore", (("T-A", "success"), ("T-B", "failed:user block")))
    assert got.occurred_at is not None and got.occurred_at.timestamp() == 1_700_000_000
    one = side.subscribe_sent("o1", [("T-A", "success")])
    assert classify(parse_message(one), {}).sent == (("T-A", "success"),)
    assert classify(parse_message(side.event("o1", "subscribe_msg_sent_event")), {}).sent == ()
