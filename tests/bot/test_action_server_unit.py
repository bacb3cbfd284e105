"""The action server's token check and settings, without serving."""

from __future__ import annotations

import pytest

from bot.action_server import authorized, main
from bot.settings import SettingsError, load_action_server_settings

TOKEN = "s3cret-s3cret-s3cret"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (TOKEN, False),  # no scheme
        (f"Basic {TOKEN}", False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_authorized(header: str | None, ok: bool) -> None:
    assert authorized(header, TOKEN) is ok


def test_settings_default_to_loopback_and_a_short_timeout() -> None:
    s = load_action_server_settings({})
    assert (s.host, s.port, s.timeout) == ("127.0.0.1", 5055, 3.0)
    s = load_action_server_settings({"ACTIONS_HOST": "10.0.0.5", "ACTIONS_PORT": "6000",
                                     "ACTION_SERVER_TIMEOUT": "2.5", "ACTION_SERVER_TOKEN": TOKEN})
    assert (s.host, s.port, s.timeout, s.require_token()) == ("10.0.0.5", 6000, 2.5, TOKEN)


@pytest.mark.parametrize("token", ["", "short"])
def test_no_usable_token_no_server(token: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SettingsError):
        load_action_server_settings({"ACTION_SERVER_TOKEN": token}).require_token()
    monkeypatch.setenv("ACTION_SERVER_TOKEN", token)
    assert main([]) == 2
    assert "ACTION_SERVER_TOKEN" in capsys.readouterr().err
