"""Metrics, JSON logs and readiness on the real stack (Rasa + action server as processes).

One scripted web chat conversation, then: /metrics on both servers moved by
exactly its turns, fallbacks and action calls; every line of both log files
is a JSON object; a turn's id is in both logs; the member's phone number and
the secrets are nowhere. Rasa logs at DEBUG here, where it writes the
shoppers' texts and slots, so the redaction has something to do.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.webchat.channel import sign
from tests.e2e.conftest import seed_minimal
from tests.support.stack import ACTION_TOKEN, CONSOLE_SECRET, SECRET, Stack, require_model, start_stack

PHONE = "13800138002"


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_model()
    work: Path = tmp_path_factory.mktemp("observability")
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    # As the launcher runs them with LOG_FORMAT=json (it sets PYTHONWARNINGS too).
    env = {"LOG_FORMAT": "json", "PYTHONWARNINGS": "ignore", "LOG_LEVEL": "DEBUG"}
    stack = start_stack(work, url, console=False, env_extra=env)
    yield stack
    stack.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("loyalty_") and not s.name.endswith("_created")}


def delta(before: dict, after: dict, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v - before.get((n, labels), 0.0) for (n, labels), v in after.items()
            if n == name and v != before.get((n, labels), 0.0)}


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_metrics_move_by_the_conversation(json_stack: Stack) -> None:
    s = json_stack
    rasa, actions = f"{s.base}/metrics", f"http://127.0.0.1:{s.actions_port}/metrics"
    before_r, before_a = scrape(rasa), scrape(actions)
    v = s.visitor()
    s.say(v, "你好")  # a new conversation: action_session_start
    # nlu_fallback (a keyboard mash keeps the conversation's Chinese; "紫色的大象会飞吗"-style questions
    # may be read as out of scope instead, which is not a fallback)
    assert "换个说法" in "\n".join(s.say(v, "zxcvb"))
    s.say(v, "我的积分有多少")  # action_check_member
    after_r, after_a = scrape(rasa), scrape(actions)

    assert delta(before_r, after_r, "loyalty_bot_turns_total") == {(("channel", "webchat"),): 3}
    assert delta(before_r, after_r, "loyalty_bot_turn_seconds_count") == {(("channel", "webchat"),): 3}
    assert delta(before_r, after_r, "loyalty_bot_fallbacks_total") == {
        (("channel", "webchat"), ("kind", "nlu_fallback")): 1}
    calls = {(("action", "action_session_start"), ("outcome", "ok")): 1,
             (("action", "action_clarify"), ("outcome", "ok")): 1,  # what a fallback runs
             (("action", "action_check_member"), ("outcome", "ok")): 1}
    assert delta(before_r, after_r, "loyalty_bot_action_calls_total") == calls
    assert delta(before_a, after_a, "loyalty_actions_runs_total") == calls


def test_logs_are_json_lines_with_the_turn_id_in_both_processes_and_no_personal_data(json_stack: Stack) -> None:
    s = json_stack
    v = s.visitor()
    token = sign(v, SECRET.encode())
    for text in ("我的积分有多少", "好的", "同意", PHONE, "跳过", "跳过"):
        s.say(v, text)

    logs = {name: (s.workdir / f"{name}.log").read_text(encoding="utf-8") for name in ("rasa", "actions")}
    parsed: dict[str, list[dict]] = {}
    for name, text in logs.items():
        parsed[name] = []
        for n, line in enumerate(text.splitlines(), 1):
            try:
                parsed[name].append(json.loads(line))
            except ValueError:
                pytest.fail(f"{name}.log line {n} is not JSON: {line[:200]}")

    turns = {r["turn_id"] for r in parsed["rasa"] if r["msg"].startswith("turn channel=webchat")}
    action_turns = {r["turn_id"] for r in parsed["actions"] if r["logger"] == "bot.action_server"
                    and re.match(r"action \w+ (ok|rejected|error) ms=", r["msg"])}
    assert len(turns) >= 6 and None not in turns
    assert action_turns and action_turns <= turns  # every action call is traced to its turn
    joined = next(r["turn_id"] for r in parsed["actions"] if r["msg"].startswith("action action_join_member ok"))
    assert any(r["turn_id"] == joined for r in parsed["rasa"] if r["logger"] != "bot.ops")  # Rasa's own lines too

    everything = "\n".join(logs.values())
    assert "138****8002" in everything  # the redaction ran on lines that had the number
    assert not re.search(r"138\D{0,3}0013\D{0,3}8002", everything)
    for secret in (ACTION_TOKEN, SECRET, CONSOLE_SECRET, token):
        assert secret not in everything


def test_readiness_and_liveness_on_both_servers(json_stack: Stack) -> None:
    s = json_stack
    status, body = get(f"{s.base}/health/ready")
    assert status == 200 and body["checks"] == {"model": "ok", "tracker_store": "ok"}
    assert get(f"{s.base}/health")[0] == 200
    status, body = get(f"http://127.0.0.1:{s.actions_port}/health/ready")
    assert status == 200 and body["checks"] == {"database": "ok"}
