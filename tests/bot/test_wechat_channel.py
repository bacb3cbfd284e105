"""The WeChat channel over real HTTP, with real signatures and AES, against the fake API."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest
import requests
import xmltodict
from rasa.core.channels.channel import UserMessage

from bot.wechat import texts
from bot.wechat.kv import MemoryStore
from tests.bot.conftest import ScriptedAssistant, new_openid

# ---------------------------------------------------------------- verification


def test_get_verification_echoes_echostr(make_channel) -> None:
    ch = make_channel()
    res = requests.get(ch.url, params=ch.side.verification("abc-123"), timeout=5)
    assert (res.status_code, res.text) == (200, "abc-123")


def test_get_verification_refuses_bad_signature_and_stale_timestamp(make_channel) -> None:
    ch = make_channel()
    forged = ch.side.verification("abc") | {"signature": "0" * 40}
    assert requests.get(ch.url, params=forged, timeout=5).status_code == 403
    stale = ch.side.verification("abc", timestamp=int(time.time()) - 3600)
    res = requests.get(ch.url, params=stale, timeout=5)
    assert res.status_code == 403 and "stale" in res.text


# ---------------------------------------------------------------- request security


def test_bad_signature_is_403_and_reaches_nobody(make_channel) -> None:
    ch = make_channel()
    params, body = ch.side.sign(ch.side.text(new_openid(), "我的积分"), token="not-the-token")
    res = requests.post(ch.url, params=params, data=body, timeout=5)
    assert res.status_code == 403
    assert ch.assistant.calls == []


def test_tampered_body_in_aes_mode_is_403(make_channel) -> None:
    ch = make_channel()
    params, body = ch.side.sign(ch.side.text(new_openid(), "hi"), aes=True)
    tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[AAAA")
    assert requests.post(ch.url, params=params, data=tampered, timeout=5).status_code == 403
    assert ch.assistant.calls == []


@pytest.mark.parametrize("offset", [-3600, +3600])
def test_stale_timestamp_is_refused_even_when_signed(make_channel, offset: int) -> None:
    ch = make_channel()
    res = ch.post(ch.side.text(new_openid(), "hi"), timestamp=int(time.time()) + offset)
    assert res.status_code == 403 and "stale" in res.text
    assert ch.assistant.calls == []


def test_aes_callback_without_configured_key_is_a_clear_400(make_channel) -> None:
    ch = make_channel(aes_key=None)
    res = ch.post(ch.side.text(new_openid(), "hi"), aes=True)
    assert res.status_code == 400 and "WECHAT_AES_KEY" in res.text


def test_unreadable_body_is_400(make_channel) -> None:
    ch = make_channel()
    params, _ = ch.side.sign("")
    res = requests.post(ch.url, params=params, data=b"<xml><not-closed>", timeout=5)
    assert res.status_code == 400


# ---------------------------------------------------------------- text messages


def test_plain_text_goes_to_the_assistant_and_comes_back_passively(make_channel) -> None:
    ch = make_channel()
    openid = new_openid()
    reply = ch.send(ch.side.text(openid, "我的积分"))
    assert reply.text == "收到：我的积分"
    # The reply goes from the account to the shopper.
    assert reply.fields["ToUserName"] == openid and reply.fields["FromUserName"] == ch.side.account
    [call] = ch.assistant.calls
    assert (call.text, call.sender_id, call.input_channel) == ("我的积分", openid, "wechat")
    assert call.metadata == {"channel": "wechat", "store_code": None, "wechat_event": None}


def test_encrypted_round_trip(make_channel) -> None:
    ch = make_channel()
    openid = new_openid()
    res = ch.post(ch.side.text(openid, "我的points还有多少"), aes=True)
    assert res.status_code == 200
    envelope = xmltodict.parse(res.text)["xml"]
    assert set(envelope) >= {"Encrypt", "MsgSignature", "TimeStamp", "Nonce"}
    assert "points" not in res.text  # nothing in clear
    reply = ch.side.open_reply(res.text)  # checks the signature, then decrypts
    assert reply.text == "收到：我的points还有多少"
    assert ch.assistant.calls[0].text == "我的points还有多少"


def test_text_that_closes_cdata_cannot_break_the_reply(make_channel) -> None:
    nasty = "a]]><MsgType>news</MsgType><![CDATA[b ]]> end"
    ch = make_channel(ScriptedAssistant(script=lambda m: [{"text": nasty + "\x07"}]))
    for aes in (False, True):
        reply = ch.send(ch.side.text(new_openid(), "hi"), aes=aes)
        assert reply.text == nasty  # intact, minus the control character XML cannot carry
        assert reply.fields["MsgType"] == "text"


def test_typed_slash_cannot_pose_as_an_intent(make_channel) -> None:
    ch = make_channel()
    ch.send(ch.side.text(new_openid(), '/store_visit{"store_code":"SH999"}'))
    received = ch.assistant.calls[0].text
    assert not received.startswith("/")
    assert received.endswith('store_visit{"store_code":"SH999"}')


def test_text_over_the_limit_is_split(make_channel, fake_api) -> None:
    long_text = "积分规则说明。" * 300  # 6300 bytes of UTF-8
    ch = make_channel(ScriptedAssistant(script=lambda m: [{"text": long_text}]))
    openid = new_openid()
    reply = ch.send(ch.side.text(openid, "规则"))
    ch.drain()
    rest = fake_api.messages(openid)
    parts = [reply.text] + rest
    assert all(len(p.encode("utf-8")) <= 2048 for p in parts)
    assert len(rest) == 3
    assert "".join(parts) == long_text


# ---------------------------------------------------------------- events


def test_subscribe_with_store_scene_starts_a_store_aware_welcome(make_channel) -> None:
    ch = make_channel()
    openid = new_openid()
    reply = ch.send(ch.side.subscribe(openid, "SH001"), aes=True)
    [call] = ch.assistant.calls
    assert call.text.startswith("/store_visit")
    assert json.loads(call.text[len("/store_visit") :]) == {"store_code": "SH001", "first_follow": True}
    assert call.metadata == {"channel": "wechat", "store_code": "SH001", "wechat_event": "subscribe"}
    assert reply.text == "收到：" + call.text


def test_subscribe_without_scene_has_no_store(make_channel) -> None:
    ch = make_channel()
    ch.send(ch.side.subscribe(new_openid()))
    assert ch.assistant.calls[0].text == '/store_visit{"first_follow":true}'
    assert ch.assistant.calls[0].metadata["store_code"] is None


def test_scan_by_a_follower_is_a_store_visit(make_channel) -> None:
    ch = make_channel()
    ch.send(ch.side.scan(new_openid(), "BJ002"))
    call = ch.assistant.calls[0]
    assert json.loads(call.text[len("/store_visit") :]) == {"store_code": "BJ002", "first_follow": False}
    assert call.metadata["wechat_event"] == "scan"


def test_scene_that_is_not_a_store_code_is_not_trusted(make_channel) -> None:
    ch = make_channel()
    ch.send(ch.side.scan(new_openid(), 'SH001","first_follow":true,"x":"'))
    call = ch.assistant.calls[0]
    assert call.text == '/store_visit{"first_follow":false}'
    assert call.metadata["store_code"] is None


def test_menu_click_maps_to_its_intent(make_channel) -> None:
    ch = make_channel(menu_intents={"MENU_POINTS": "ask_points", "MENU_COUPONS": "ask_coupons"})
    ch.send(ch.side.event(new_openid(), "CLICK", "MENU_COUPONS"))
    assert ch.assistant.calls[0].text == "/ask_coupons"
    assert ch.assistant.calls[0].metadata["wechat_event"] == "click"


def test_unknown_menu_key_gets_a_polite_reply_without_the_assistant(make_channel) -> None:
    ch = make_channel()
    reply = ch.send(ch.side.event(new_openid(), "CLICK", "MENU_NOPE"))
    assert reply.text == texts.UNKNOWN_MENU_ITEM
    assert ch.assistant.calls == []


@pytest.mark.parametrize("msg_type", ["voice", "image", "location", "video"])
def test_unsupported_message_types_get_a_polite_bilingual_reply(make_channel, msg_type: str) -> None:
    ch = make_channel()
    reply = ch.send(ch.side.media(new_openid(), msg_type))
    assert reply.text == texts.UNSUPPORTED_MESSAGE
    assert "文字" in reply.text and "text" in reply.text
    assert ch.assistant.calls == []


def test_unsubscribe_is_acknowledged_silently(make_channel) -> None:
    ch = make_channel()
    reply = ch.send(ch.side.event(new_openid(), "unsubscribe"))
    assert reply.raw == "success"
    assert ch.assistant.calls == []


# ---------------------------------------------------------------- retries


def test_duplicate_msgid_runs_the_assistant_once(make_channel) -> None:
    ch = make_channel()
    xml = ch.side.text(new_openid(), "领券", msg_id=1234567890123456)
    first = ch.send(xml)
    retries = [ch.send(xml, aes=aes) for aes in (False, True)]  # re-signed, as WeChat does
    assert first.text == "收到：领券"
    assert [r.raw for r in retries] == ["success", "success"]
    assert len(ch.assistant.calls) == 1


def test_concurrent_retries_run_the_assistant_once(make_channel) -> None:
    # Retries racing the first delivery while the assistant is still thinking.
    ch = make_channel(ScriptedAssistant(delay=0.3))
    xml = ch.side.text(new_openid(), "兑换", msg_id=9876543210987654)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(ch.post(xml).status_code)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 5
    assert len(ch.assistant.calls) == 1


def test_event_retries_dedup_by_sender_time_and_event(make_channel) -> None:
    ch = make_channel()
    openid, created = new_openid(), int(time.time())
    xml = ch.side.subscribe(openid, "SH001", create_time=created)
    ch.send(xml)
    assert ch.send(xml).raw == "success"
    assert len(ch.assistant.calls) == 1
    ch.send(ch.side.scan(openid, "SH001", create_time=created))  # another event, same second
    ch.send(ch.side.subscribe(openid, "SH001", create_time=created + 1))  # a later follow
    assert len(ch.assistant.calls) == 3


# ---------------------------------------------------------------- buttons


def _menu(message: UserMessage) -> list[dict[str, Any]]:
    if message.text in ("/ask_points", "/ask_coupons"):
        return [{"text": f"ok {message.text}"}]
    return [
        {
            "text": "想做什么？",
            "buttons": [
                {"title": "查积分", "payload": "/ask_points"},
                {"title": "领券", "payload": "/ask_coupons"},
            ],
        }
    ]


def test_buttons_become_numbered_choices_answerable_by_number(make_channel) -> None:
    ch = make_channel(ScriptedAssistant(script=_menu))
    openid = new_openid()
    reply = ch.send(ch.side.text(openid, "菜单"))
    assert reply.text == "想做什么？\n1. 查积分\n2. 领券"
    assert ch.send(ch.side.text(openid, "２")).text == "ok /ask_coupons"  # full-width digit too
    ch.send(ch.side.text(openid, "7"))  # not a shown choice: passed on as typed
    assert [c.text for c in ch.assistant.calls] == ["菜单", "/ask_coupons", "7"]


def test_a_typed_button_title_answers_like_its_number(make_channel) -> None:
    ch = make_channel(ScriptedAssistant(script=_menu))
    openid = new_openid()
    ch.send(ch.side.text(openid, "菜单"))
    assert ch.send(ch.side.text(openid, " 领券！")).text == "ok /ask_coupons"
    # The choices of the latest turn count: "领券" was not offered by this last answer.
    ch.send(ch.side.text(openid, "领券"))
    assert [c.text for c in ch.assistant.calls] == ["菜单", "/ask_coupons", "领券"]


def test_choices_belong_to_their_shopper(make_channel) -> None:
    ch = make_channel(ScriptedAssistant(script=_menu))
    ch.send(ch.side.text(new_openid(), "菜单"))
    ch.send(ch.side.text(new_openid(), "1"))
    assert ch.assistant.calls[-1].text == "1"


# ---------------------------------------------------------------- the 5-second rule


def test_slow_assistant_gets_success_then_a_customer_service_message(make_channel, fake_api) -> None:
    # Real timings: the default 4 s wait and an assistant taking 5.5 s.
    ch = make_channel(ScriptedAssistant(delay=5.5), passive_wait=4.0)
    openid = new_openid()
    started = time.monotonic()
    res = ch.post(ch.side.text(openid, "推荐点护肤品"))
    answered = time.monotonic() - started
    assert res.status_code == 200 and res.text == "success"
    assert 3.9 <= answered < 5.0
    assert fake_api.messages(openid) == []  # not yet: the assistant is still thinking
    assert fake_api.wait_messages(openid, 1, timeout=10) == ["收到：推荐点护肤品"]
    assert len(ch.assistant.calls) == 1


def test_answer_survives_wechat_hanging_up_and_the_retry(make_channel, fake_api) -> None:
    # WeChat gave up on the connection before the passive reply was ready,
    # then retried: the turn runs once and its answer arrives once, by CS.
    ch = make_channel(ScriptedAssistant(delay=0.6), passive_wait=1.0)
    openid = new_openid()
    xml = ch.side.text(openid, "还在吗", msg_id=4242)
    params, body = ch.side.sign(xml)
    with pytest.raises(requests.Timeout):
        requests.post(ch.url, params=params, data=body, timeout=0.2)
    assert ch.send(xml).raw == "success"  # the retry
    assert fake_api.wait_messages(openid, 1) == ["收到：还在吗"]
    ch.drain()
    assert fake_api.messages(openid) == ["收到：还在吗"]
    assert len(ch.assistant.calls) == 1


def test_late_messages_of_a_turn_follow_by_customer_service(make_channel, fake_api) -> None:
    two = ScriptedAssistant(script=lambda m: [{"text": "第一条"}, {"text": "第二条"}], gap=1.0)
    ch = make_channel(two, passive_wait=0.4)
    openid = new_openid()
    assert ch.send(ch.side.text(openid, "hi")).text == "第一条"
    ch.drain()
    assert fake_api.messages(openid) == ["第二条"]


def test_quick_messages_of_a_turn_share_one_passive_reply(make_channel, fake_api) -> None:
    two = ScriptedAssistant(script=lambda m: [{"text": "第一条"}, {"text": "第二条"}])
    ch = make_channel(two)
    openid = new_openid()
    assert ch.send(ch.side.text(openid, "hi")).text == "第一条\n\n第二条"
    ch.drain()
    assert fake_api.messages(openid) == []  # no customer-service quota spent


def test_assistant_failure_gets_an_apology(make_channel) -> None:
    ch = make_channel(ScriptedAssistant(fail=True))
    assert ch.send(ch.side.text(new_openid(), "hi")).text == texts.SOMETHING_WENT_WRONG


# ---------------------------------------------------------------- customer-service API


@pytest.mark.parametrize("errcode", [45047, 45015])
def test_refused_customer_service_message_is_logged_not_fatal(
    make_channel, fake_api, caplog, errcode: int
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wechat.delivery")
    ch = make_channel(ScriptedAssistant(delay=0.5), passive_wait=0.2)
    openid = new_openid()
    fake_api.fail_next(errcode)
    assert ch.send(ch.side.text(openid, "慢一点")).raw == "success"
    ch.drain()
    assert fake_api.messages(openid) == []
    assert any(f"errcode={errcode}" in r.getMessage() for r in caplog.records)
    assert not any(openid in r.getMessage() for r in caplog.records)  # openids are masked
    # The channel carries on.
    ch.assistant.delay = 0
    assert ch.send(ch.side.text(openid, "还在吗")).text == "收到：还在吗"


def test_quota_refusal_stops_further_sends_until_the_shopper_writes(make_channel, fake_api, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wechat.delivery")
    ch = make_channel(ScriptedAssistant(delay=0.4), passive_wait=0.1)
    openid = new_openid()
    ch.send(ch.side.event(openid, "CLICK", "MENU_POINTS"))
    fake_api.fail_next(45047)
    ch.drain()
    # Same window, another slow answer (an agent reply, say): not even attempted.
    ch.server.call(ch.channel.delivery.send(openid, ["客服回复"]))
    assert fake_api.messages(openid) == []
    assert any("quota reached" in r.getMessage() for r in caplog.records)
    ch.send(ch.side.text(openid, "hello"))  # a new message opens a new window
    ch.drain()
    assert fake_api.messages(openid) == ["收到：hello"]


def test_event_window_allows_three_customer_service_messages(make_channel, fake_api, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wechat.delivery")
    big = ["说明" * 500 + str(i) for i in range(5)]  # ~3000 bytes each: one message apiece and more
    ch = make_channel(
        ScriptedAssistant(script=lambda m: [{"text": t} for t in big], delay=0.3), passive_wait=0.1
    )
    openid = new_openid()
    assert ch.send(ch.side.subscribe(openid, "SH001")).raw == "success"
    ch.drain()
    assert len(fake_api.messages(openid)) == 3
    assert any("quota reached" in r.getMessage() and "dropped=" in r.getMessage() for r in caplog.records)


def test_access_token_is_fetched_once_and_refreshed_when_expired(make_channel, fake_api) -> None:
    ch = make_channel(ScriptedAssistant(delay=0.2), passive_wait=0.05)
    before = fake_api.stats()["token_fetches"]
    openid = new_openid()
    for i in range(3):
        ch.send(ch.side.text(openid, f"问题{i}"))
    ch.drain()
    assert len(fake_api.messages(openid)) == 3
    assert fake_api.stats()["token_fetches"] - before == 1
    fake_api.expire_tokens()  # WeChat answers 42001; the client refreshes and retries
    ch.send(ch.side.text(openid, "再问"))
    ch.drain()
    assert fake_api.messages(openid)[-1] == "收到：再问"
    assert fake_api.stats()["token_fetches"] - before == 2


def test_slow_wechat_api_times_out_without_blocking_the_channel(make_channel, fake_api, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="bot.wechat.delivery")
    ch = make_channel(ScriptedAssistant(delay=0.2), passive_wait=0.05, http_timeout=0.3)
    openid = new_openid()
    ch.send(ch.side.text(openid, "warm up"))  # fetch the token while the API is quick
    ch.drain()
    fake_api.set_delay(3.0)
    try:
        started = time.monotonic()
        ch.send(ch.side.text(openid, "慢"))
        ch.drain()
        assert time.monotonic() - started < 2.5
        assert any("send failed" in r.getMessage() for r in caplog.records)
        ch.assistant.delay = 0
        assert ch.send(ch.side.text(openid, "快")).text == "收到：快"
    finally:
        fake_api.set_delay(0)


def test_pushed_messages_use_the_customer_service_api(make_channel, fake_api) -> None:
    # What Rasa uses for agent replies and trigger_intent: no callback to answer.
    ch = make_channel()
    openid = new_openid()
    out = ch.channel.get_output_channel()
    ch.server.call(
        out.send_response(
            openid, {"text": "客服小王为您服务", "buttons": [{"title": "好的", "payload": "/affirm"}]}
        )
    )
    assert fake_api.messages(openid) == ["客服小王为您服务\n1. 好的"]
    ch.send(ch.side.text(openid, "1"))
    assert ch.assistant.calls[-1].text == "/affirm"


def test_without_app_credentials_replies_stay_passive(make_channel, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wechat.delivery")
    ch = make_channel(ScriptedAssistant(delay=0.3), with_api=False, passive_wait=0.05)
    assert ch.send(ch.side.text(new_openid(), "hi")).raw == "success"
    ch.drain()
    assert any("WECHAT_APP_SECRET not set" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- mounted by Rasa


def test_rasa_mounts_the_channel_from_credentials_yml(tmp_path, monkeypatch, fake_api) -> None:
    from types import SimpleNamespace

    from rasa.core.channels.channel import register
    from rasa.core.run import create_http_input_channels
    from sanic import Sanic

    from bot.wechat.dev.local_server import LocalServer
    from bot.wechat.dev.simulate import WeChatSide
    from tests.bot.conftest import AES_KEY, APP_ID, TOKEN

    monkeypatch.setenv("WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_AES_KEY", AES_KEY)
    credentials = tmp_path / "credentials.yml"
    credentials.write_text(
        "bot.wechat.channel.WeChatInput:\n"
        "  token: ${WECHAT_TOKEN}\n"
        f"  api_base_url: {fake_api.api_base_url}\n"
    )
    [channel] = create_http_input_channels(None, str(credentials))
    assistant = ScriptedAssistant()
    app = Sanic("rasa_like_server")
    app.ctx.agent = SimpleNamespace(handle_message=assistant)  # what Rasa's handler calls
    register([channel], app, route="/webhooks/")
    side = WeChatSide(TOKEN, APP_ID, AES_KEY)
    with LocalServer(app) as server:
        params, body = side.sign(side.text(new_openid(), "你好"), aes=True)
        res = requests.post(server.url + "/webhooks/wechat/webhook", params=params, data=body, timeout=5)
    assert side.open_reply(res.text).text == "收到：你好"
    assert assistant.calls[0].input_channel == "wechat"


# ---------------------------------------------------------------- shared-store failures


class FlakyStore(MemoryStore):
    """A memory store whose operations can be made to fail, like Redis going away."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    async def add(self, key: str, value: str, ttl: float) -> bool:
        if "add" in self.failing:
            raise ConnectionError("store down")
        return await super().add(key, value, ttl)

    async def put(self, key: str, value: str, ttl: float) -> None:
        if "put" in self.failing:
            raise ConnectionError("store down")
        await super().put(key, value, ttl)


def test_dedup_store_down_refuses_with_503_and_runs_nothing(make_channel) -> None:
    store = FlakyStore()
    ch = make_channel(store=store)
    xml = ch.side.text(new_openid(), "积分", msg_id=555)
    store.failing = {"add"}
    assert ch.post(xml).status_code == 503
    assert ch.assistant.calls == []
    store.failing = set()  # back again: WeChat's retry is processed, once
    assert ch.send(xml).text == "收到：积分"
    assert ch.send(xml).raw == "success"
    assert len(ch.assistant.calls) == 1


def test_failure_before_the_assistant_gives_the_retry_back(make_channel) -> None:
    store = FlakyStore()
    ch = make_channel(store=store)
    xml = ch.side.text(new_openid(), "券", msg_id=556)
    store.failing = {"put"}  # recording the quota window fails
    assert ch.post(xml).status_code == 503
    store.failing = set()
    assert ch.send(xml).text == "收到：券"
    assert len(ch.assistant.calls) == 1
