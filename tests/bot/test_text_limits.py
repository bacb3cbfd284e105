"""One text limit on every way in: the NLU guard, and the WeChat channel's refusal before the assistant.

The channel runs over real HTTP with real signatures and AES (see conftest.py);
end-to-end checks with the trained model are in tests/e2e/test_long_messages.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
import yaml
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.limits import TOO_LONG, too_long_reply
from bot.nlu.guard import CUT_FROM, TextLengthGuard
from bot.settings import SettingsError, load_webchat_settings, load_wechat_settings, max_text_chars
from tests.bot.conftest import new_openid

ROOT = Path(__file__).resolve().parents[2]
HUNDRED_KB_ZH = "积分" * 17_000  # 34,000 characters, 102 KB of UTF-8
HUNDRED_KB_EN = "how many points do I have " * 4_000  # 104 KB


# ---------------------------------------------------------------- the setting


def test_one_setting_for_every_channel() -> None:
    assert max_text_chars({}) == 1000
    env = {"BOT_MAX_TEXT_CHARS": "300"}
    assert max_text_chars(env) == 300
    assert load_wechat_settings(env, token="t").max_text_chars == 300
    assert load_webchat_settings(env).max_text_chars == 300
    with pytest.raises(SettingsError, match="BOT_MAX_TEXT_CHARS"):
        max_text_chars({"BOT_MAX_TEXT_CHARS": "3"})


def test_refusal_speaks_the_shoppers_language() -> None:
    assert too_long_reply(HUNDRED_KB_ZH, 1000) == TOO_LONG["zh"].format(max=1000)
    assert too_long_reply(HUNDRED_KB_EN, 1000) == TOO_LONG["en"].format(max=1000)
    assert too_long_reply("12345" * 500, 1000, "en") == TOO_LONG["en"].format(max=1000)  # digits do not tell
    assert too_long_reply(None, 1000) == TOO_LONG["zh"].format(max=1000)


# ---------------------------------------------------------------- the NLU guard


def _guard(config: dict | None = None) -> TextLengthGuard:
    return TextLengthGuard.create({**TextLengthGuard.get_default_config(), **(config or {})}, None, None, None)


def test_guard_cuts_100kb_fast_to_a_bounded_text() -> None:
    guard = _guard({"max_chars": 1000})
    message = Message(data={TEXT: HUNDRED_KB_ZH})
    started = time.perf_counter()
    [out] = guard.process([message])
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05, elapsed
    assert out.get(TEXT) == HUNDRED_KB_ZH[:1000]
    # The parse data records the cut (and only its length, no text).
    assert out.as_dict(only_output_properties=True)[CUT_FROM] == len(HUNDRED_KB_ZH)


def test_guard_leaves_short_texts_and_intents_alone() -> None:
    guard = _guard({"max_chars": 1000})
    texts = ["我的积分", "x" * 1000, '/store_visit{"store_code":"SH001"}']
    messages = guard.process([Message(data={TEXT: t}) for t in texts])
    assert [m.get(TEXT) for m in messages] == texts
    assert all(m.get(CUT_FROM) is None for m in messages)
    assert guard.process([Message(data={})])[0].get(TEXT) is None  # no text at all: nothing to do


def test_guard_follows_the_setting_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_MAX_TEXT_CHARS", "50")
    assert _guard().max_chars == 50
    assert _guard({"max_chars": 80}).max_chars == 80


def test_guard_is_the_first_component_of_the_pipeline() -> None:
    pipeline = yaml.safe_load((ROOT / "config.yml").read_text())["pipeline"]
    assert pipeline[0]["name"] == "bot.nlu.guard.TextLengthGuard"


# ---------------------------------------------------------------- WeChat


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "aes"])
@pytest.mark.parametrize(("text", "lang"), [(HUNDRED_KB_ZH, "zh"), (HUNDRED_KB_EN, "en")], ids=["zh", "en"])
def test_wechat_refuses_a_100kb_text_politely_and_fast(make_channel, aes: bool, text: str, lang: str) -> None:
    ch = make_channel()
    ch.send(ch.side.text(new_openid(), "warm up"), aes=aes)  # first request of a server pays for imports
    params, body = ch.side.sign(ch.side.text(new_openid(), text), aes=aes)
    started = time.perf_counter()
    res = requests.post(ch.url, params=params, data=body, timeout=30)
    elapsed = time.perf_counter() - started
    assert res.status_code == 200, res.text
    assert ch.side.open_reply(res.text).text == TOO_LONG[lang].format(max=1000)
    assert elapsed < 0.5, elapsed
    assert [c.text for c in ch.assistant.calls] == ["warm up"]  # the long text never reached the assistant


def test_wechat_text_at_the_limit_still_goes_through(make_channel) -> None:
    ch = make_channel(max_text_chars=20)
    assert ch.send(ch.side.text(new_openid(), "积" * 20)).text == "收到：" + "积" * 20
    assert ch.send(ch.side.text(new_openid(), "积" * 21)).text == TOO_LONG["zh"].format(max=20)


def test_wechat_body_over_the_cap_is_refused_unread(make_channel, monkeypatch: pytest.MonkeyPatch) -> None:
    ch = make_channel()
    opened: list[bytes] = []
    real_open = ch.channel.security.open_callback
    monkeypatch.setattr(ch.channel.security, "open_callback", lambda a, b: opened.append(b) or real_open(a, b))
    for aes in (False, True):
        params, body = ch.side.sign(ch.side.text(new_openid(), "积分" * 100_000), aes=aes)  # 600 KB+
        res = requests.post(ch.url, params=params, data=body, timeout=30)
        assert res.status_code == 413
    # A declared 50 MB body is refused on its headers: no byte of it is awaited.
    params, _ = ch.side.sign("")
    host, port = ch.server.host, ch.server.port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall((f"POST /webhooks/wechat/webhook?{urlencode(params)} HTTP/1.1\r\nHost: {host}\r\n"
                      "Content-Type: text/xml\r\nContent-Length: 50000000\r\n\r\n").encode())
        assert sock.recv(200).startswith(b"HTTP/1.1 413")
    assert opened == [] and ch.assistant.calls == []


@pytest.mark.parametrize("aes", [False, True], ids=["plain", "aes"])
def test_wechat_unsigned_body_costs_no_parsing(make_channel, monkeypatch: pytest.MonkeyPatch, aes: bool) -> None:
    ch = make_channel()
    opened: list[bytes] = []
    real_open = ch.channel.security.open_callback
    monkeypatch.setattr(ch.channel.security, "open_callback", lambda a, b: opened.append(b) or real_open(a, b))
    params, body = ch.side.sign(ch.side.text(new_openid(), HUNDRED_KB_ZH), aes=aes)
    params.pop("signature")  # AES mode still carries msg_signature: not enough without the URL's own
    res = requests.post(ch.url, params=params, data=body, timeout=30)
    assert res.status_code == 403
    assert opened == [] and ch.assistant.calls == []
