"""Metrics, logs and readiness of the bot processes, in-process: WeChat callback outcomes and
API errors, redaction, JSON lines, the turn id, and readiness with a database or Redis down."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text

from bot import action_server, health, logs, metrics, ops
from loyalty import db, telemetry
from loyalty.errors import Unavailable
from tests.bot.conftest import ScriptedAssistant, new_openid

pytestmark = pytest.mark.skipif(not metrics.ENABLED, reason="METRICS_ENABLED=false")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def callbacks() -> dict[str, float]:
    outcomes = ("passive", "customer_service", "silent", "deduplicated", "refused", "error")
    return {o: value("loyalty_wechat_callbacks_total", outcome=o) for o in outcomes}


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


# ---------------------------------------------------------------- WeChat callbacks


def test_wechat_callbacks_are_counted_by_outcome(make_channel, fake_api) -> None:
    ch = make_channel(ScriptedAssistant(delay=0.3), passive_wait=0.1)
    openid = new_openid()
    before = callbacks()
    fast = ch.side.text(openid, "我的积分")
    ch.assistant.delay = 0
    assert ch.send(fast).text  # passive
    assert ch.send(fast).raw == "success"  # WeChat's retry of the same message
    ch.assistant.delay = 0.5
    assert ch.send(ch.side.text(openid, "慢一点")).raw == "success"  # answer follows by CS message
    ch.drain()
    assert ch.send(ch.side.event(openid, "unsubscribe")).raw == "success"  # nothing for the assistant
    params, body = ch.side.sign(ch.side.text(openid, "伪造"), token="not-the-token")
    assert requests.post(ch.url, params=params, data=body, timeout=5).status_code == 403
    assert moved(before, callbacks()) == {"passive": 1, "deduplicated": 1, "customer_service": 1,
                                          "silent": 1, "refused": 1}


def test_wechat_api_errors_are_counted_by_errcode(make_channel, fake_api) -> None:
    ch = make_channel(ScriptedAssistant(delay=0.3), passive_wait=0.05)
    openid = new_openid()
    before = value("loyalty_wechat_api_errors_total", errcode="45047")
    fake_api.fail_next(45047)
    assert ch.send(ch.side.text(openid, "慢一点")).raw == "success"
    ch.drain()
    assert value("loyalty_wechat_api_errors_total", errcode="45047") == before + 1


# ---------------------------------------------------------------- the core's events


def test_database_retries_and_outages_reach_the_counters(tmp_path) -> None:
    retries, down = value("loyalty_db_retries_total"), value("loyalty_db_unavailable_total")
    telemetry.notify(telemetry.DB_RETRY)
    engine = create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db", future=True)
    db.configure(engine)
    try:
        with pytest.raises(Unavailable):
            db.run(lambda s: s.execute(text("SELECT 1")))
    finally:
        db.configure()  # back to the configured database
    assert value("loyalty_db_retries_total") == retries + 1
    assert value("loyalty_db_unavailable_total") == down + 1


# ---------------------------------------------------------------- logs


@pytest.mark.parametrize(("raw", "clean"), [
    ("phone 13800138000 bound", "phone 138****8000 bound"),
    ("手机号138 0013 8000。", "手机号138****8000。"),
    ("order 2013800138000123 ok", "order 2013800138000123 ok"),  # a longer number is not a phone
    ("验证码：482913，5 分钟内有效", "验证码：******，5 分钟内有效"),
    ("your code is 482913", "your code is ******"),
    ("482913 items", "482913 items"),  # six digits without a code word stay
    ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
    ("GET /cgi-bin/message?access_token=ACCESS123&x=1", "GET /cgi-bin/message?access_token=***&x=1"),
    ('{"visitor": "v1", "token": "f00dfeed"}', '{"visitor": "v1", "token": "***"}'),
])
def test_redaction(raw: str, clean: str) -> None:
    assert logs.redact(raw) == clean


def test_json_lines_carry_the_turn_id_and_no_personal_data() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(logs.TurnFilter())
    handler.addFilter(logs.RedactFilter())
    handler.setFormatter(logs.JsonFormatter())
    lines: list[str] = []
    handler.emit = lambda record: lines.append(handler.format(record)) if handler.filter(record) else None  # type: ignore[method-assign]
    log = logging.getLogger("test.observability")
    log.addHandler(handler)
    try:
        turn = logs.start_turn()
        try:
            raise ValueError("bad phone 13912345678")
        except ValueError:
            log.exception("member %s failed\nsecond line", "13912345678")
    finally:
        log.removeHandler(handler)
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["turn_id"] == turn and line["level"] == "ERROR"
    assert "139****5678" in line["msg"] and "139****5678" in line["exc"]
    assert "13912345678" not in lines[0]


def test_a_turn_id_from_outside_is_taken_only_when_well_formed() -> None:
    assert logs.start_turn("0123456789abcdef") == "0123456789abcdef"
    assert logs.start_turn('x" injected') != 'x" injected'


# ---------------------------------------------------------------- readiness


def test_action_server_not_ready_when_the_database_is_unreachable(tmp_path) -> None:
    db.configure(create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db", future=True))
    try:
        state = asyncio.run(action_server.database_state())
    finally:
        db.configure()
    assert state.startswith("unreachable")
    res = health.ready_response({"database": state})
    assert res.status == 503
    assert json.loads(res.body) == {"status": "not ready", "reasons": {"database": state},
                                    "checks": {"database": state}}


def test_action_server_ready_when_the_database_answers(tmp_path) -> None:
    db.configure(create_engine(f"sqlite:///{tmp_path}/ok.db", future=True))
    try:
        assert asyncio.run(action_server.database_state()) == "ok"
    finally:
        db.configure()


def test_rasa_not_ready_without_a_model_or_with_redis_down() -> None:
    app = SimpleNamespace(ctx=SimpleNamespace(agent=None))
    checks = asyncio.run(ops.readiness(app, redis={"webchat": "redis://127.0.0.1:1/0"}))
    assert checks["model"] == "no model loaded"
    assert checks["redis_webchat"].startswith("unreachable")
    assert health.ready_response(checks).status == 503


def test_metrics_can_be_switched_off() -> None:
    assert metrics.NOOP.labels("x").inc() is None
    assert metrics.channel_label("wechat") == "wechat" and metrics.channel_label("rest") == "other"


def test_metrics_add_up_across_forked_workers(tmp_path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, what forked workers count is summed by /metrics in any of them."""
    script = """
import os
from bot import metrics
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        metrics.Turn("wechat").done()
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
print(metrics.exposition()[0].decode())
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "METRICS_ENABLED": "true"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'loyalty_bot_turns_total{channel="wechat"} 2.0' in out.stdout
