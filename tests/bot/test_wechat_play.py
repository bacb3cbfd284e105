"""The developer tools: the script that plays WeChat, and the fake API run on its own."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from bot.wechat.dev import play
from tests.bot.conftest import AES_KEY, APP_ID, APP_SECRET, TOKEN, ScriptedAssistant, new_openid
from tests.support.servers import free_port


def _play(ch, *args: str) -> int:
    return play.main(["--url", ch.url, "--token", TOKEN, "--app-id", APP_ID, "--aes-key", AES_KEY, *args])


def test_play_sends_encrypted_text_and_prints_the_reply(make_channel, capsys) -> None:
    ch = make_channel()
    openid = new_openid()
    assert _play(ch, "--openid", openid, "--aes", "我的积分") == 0
    out = capsys.readouterr().out
    assert "passive reply" in out and "收到：我的积分" in out
    assert ch.assistant.calls[0].sender_id == openid


def test_play_store_follow_and_retries(make_channel, capsys) -> None:
    ch = make_channel()
    assert _play(ch, "--openid", new_openid(), "--subscribe", "SH001", "--repeat", "3") == 0
    out = capsys.readouterr().out
    assert out.count("success (no passive reply)") == 2  # the two retries
    assert [c.text for c in ch.assistant.calls] == ['/store_visit{"store_code":"SH001","first_follow":true}']


def test_play_verification_and_bad_token(make_channel, capsys) -> None:
    ch = make_channel()
    assert _play(ch, "--verify") == 0
    assert "verification passed" in capsys.readouterr().out
    assert play.main(["--url", ch.url, "--token", "wrong", "--openid", "o1", "hi"]) == 1
    assert "HTTP 403" in capsys.readouterr().out


def test_play_shows_customer_service_messages_from_the_fake_api(make_channel, fake_api, capsys) -> None:
    ch = make_channel(ScriptedAssistant(delay=0.5), passive_wait=0.1)
    args = ["--openid", new_openid(), "--fake-api", fake_api.base, "--wait", "3", "慢慢来"]
    assert _play(ch, *args) == 0
    out = capsys.readouterr().out
    assert "success (no passive reply)" in out
    assert "customer-service message:\n收到：慢慢来" in out


def test_fake_server_runs_from_the_command_line() -> None:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bot.wechat.dev.fake_server",
        "--port",
        str(port),
        "--app-id",
        APP_ID,
        "--secret",
        APP_SECRET,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                res = requests.get(
                    f"http://127.0.0.1:{port}/cgi-bin/token",
                    timeout=1,
                    params={"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET},
                )
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("fake server did not start")
                time.sleep(0.2)
        assert res.json()["expires_in"] == 7200 and res.json()["access_token"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
