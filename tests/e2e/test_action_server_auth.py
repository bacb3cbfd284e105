"""Only the Rasa server may call the action server: a forged tracker without the token changes nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.members import make_member, member_state
from tests.support.stack import ACTION_TOKEN, Stack


def _forged_call(action: str, sender: str) -> dict[str, Any]:
    """What an attacker would post: a made-up tracker for someone else's conversation."""
    return {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {"responses": {}, "slots": {}},
        "tracker": {
            "sender_id": sender, "slots": {"language": "zh"}, "latest_message": {"text": "注销", "intent": {}},
            "events": [], "paused": False, "followup_action": None, "active_loop": {},
            "latest_action_name": "action_listen", "latest_input_channel": "webchat",
        },
    }


def _post(stack: Stack, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{stack.actions_port}{path}", data=data,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_calls_without_the_right_token_are_refused_and_change_nothing(stack: Stack) -> None:
    sender = "web-" + stack.visitor()
    victim = make_member("webchat", sender, 250)
    call = _forged_call("action_close_account", sender)

    assert _post(stack, "/webhook", call, {}) == 401
    assert _post(stack, "/webhook", call, {"Authorization": "Bearer " + "x" * len(ACTION_TOKEN)}) == 401
    assert _post(stack, "/webhook", call, {"Authorization": ACTION_TOKEN}) == 401  # no scheme
    assert _post(stack, "/webhook?token=" + ACTION_TOKEN, call, {}) == 401  # not in the URL either
    assert _post(stack, "/actions", None, {}) == 401
    status, points, phone = member_state(victim)
    assert (status, points) == ("active", 250) and phone

    # The same forged call with the token does close the account: the token is what stood in the way.
    assert _post(stack, "/webhook", call, {"Authorization": f"Bearer {ACTION_TOKEN}"}) == 200
    assert member_state(victim)[:2] == ("closed", 0)


def test_health_stays_open(stack: Stack) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.actions_port}/health", timeout=10) as r:
        assert r.status == 200


def test_action_server_listens_on_loopback_only(stack: Stack) -> None:
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) == stack.actions_port:  # 0A: LISTEN
                    listening.append(address)
    assert listening == ["0100007F"], listening  # 127.0.0.1, and nothing else
