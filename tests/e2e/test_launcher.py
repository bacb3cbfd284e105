"""`python -m bot.launcher` as a process: a killed child comes back while the others keep serving.

The launcher runs on free ports against a temporary SQLite database, with a
copy of endpoints.yml whose tracker store is moved to the temporary folder
(its action endpoint is the shipped one: URL and token come from the
launcher). Nothing of the launcher's is faked.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

from bot.webchat.channel import sign
from loyalty import db
from tests.e2e.conftest import seed_minimal
from tests.support.members import make_member
from tests.support.servers import free_port
from tests.support.stack import MODEL, ROOT, require_model

SECRET = "launcher-test-webchat-secret"


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    log: Path
    var: Path
    port: int
    actions_port: int
    api_port: int
    staff_port: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        """The launcher's live children by role ("actions", "api", "rasa"), read from /proc."""
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            if ppid != self.proc.pid:
                continue
            for role, marker in (("actions", "--actions"), ("api", "loyalty serve"), ("rasa", " run ")):
                if marker in cmd:
                    found[role] = int(entry.name)
        return found


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status < 500
    except OSError:
        return False


def _wait_until(check: object, timeout: float, what: str, launched: Launched) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        assert launched.proc.poll() is None, launched.output()[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout:.0f} s:\n{launched.output()[-3000:]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    require_model()
    work = tmp_path_factory.mktemp("launcher")
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    endpoints = work / "endpoints.yml"
    endpoints.write_text((ROOT / "endpoints.yml").read_text().replace("var/tracker.db", str(work / "tracker.db")))
    env = {k: v for k, v in os.environ.items()
           if k not in ("ACTION_SERVER_TOKEN", "ACTION_SERVER_URL", "WECHAT_TOKEN", "ACTIONS_HOST")}
    env.update({
        "LOYALTY_DATABASE_URL": url, "LOYALTY_VAR_DIR": str(work / "var"), "WEBCHAT_SECRET": SECRET,
        "LOYALTY_MODEL_DIR": str(work / "reco-models"), "RASA_ENDPOINTS": str(endpoints),
        "RASA_TELEMETRY_ENABLED": "false", "PYTHONUNBUFFERED": "1",
    })
    ports = free_port(), free_port(), free_port(), free_port()
    log = work / "launcher.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.launcher", "--model", str(MODEL), "--port", str(ports[0]),
         "--actions-port", str(ports[1]), "--api-port", str(ports[2]),
         "--staff-port", str(ports[3])],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    launched = Launched(proc, log, work / "var", *ports)
    try:
        _wait_until(lambda: "Ready." in launched.output(), 400, "the launcher's Ready", launched)
        yield launched
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ask(launched: Launched, visitor: str, text: str) -> str:
    """One message over the web chat socket; the bot's texts of that turn."""
    url = (f"ws://127.0.0.1:{launched.port}/webhooks/webchat/ws"
           f"?visitor={visitor}&token={sign(visitor, SECRET.encode())}")

    async def turn() -> str:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "message", "id": str(time.time_ns()), "text": text}))
            texts = []
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] == "bot":
                    texts.append(frame["text"])
                elif frame["type"] == "ack":
                    return "\n".join(texts)

    return asyncio.run(turn())


def test_killed_action_server_is_restarted_while_the_others_serve(launched: Launched) -> None:
    engine = db.make_engine(f"sqlite:///{launched.var.parent / 'loyalty.db'}")
    db.configure(engine)
    visitor = "launcher" + str(time.time_ns())
    make_member("webchat", f"web-{visitor}", 90)
    assert "你现在有 90 积分" in _ask(launched, visitor, "我的积分")
    before = launched.children()
    rasa_pid, api_pid, old = before["rasa"], before["api"], before["actions"]

    os.kill(old, signal.SIGKILL)
    # The others keep serving: the loyalty API answers, the bot apologises instead of going quiet.
    assert _up(f"http://127.0.0.1:{launched.api_port}/api/v1/health")
    assert _up(f"http://127.0.0.1:{launched.staff_port}/staff/health")
    assert "系统有点忙" in _ask(launched, visitor, "我的积分")
    _wait_until(lambda: launched.children().get("actions", old) != old, 30, "a new action server", launched)
    assert re.search(rf"action server \(pid {old}\) exited with code -9; restarting in 1 s", launched.output())
    _wait_until(lambda: _up(f"http://127.0.0.1:{launched.actions_port}/health"), 60, "its health", launched)
    time.sleep(1.2)  # past the second in which calls fail at once after an outage
    assert "你现在有 90 积分" in _ask(launched, visitor, "我的积分")
    after = launched.children()
    assert (after["rasa"], after["api"]) == (rasa_pid, api_pid)  # never restarted

    # The development token the launcher made is private to its owner.
    token = launched.var / "action_server.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    engine.dispose()


def test_sigterm_stops_every_child(launched: Launched) -> None:
    children = list(launched.children().values())
    assert len(children) == 3
    launched.proc.send_signal(signal.SIGTERM)
    assert launched.proc.wait(40) == 0
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in children if _alive(p)]
