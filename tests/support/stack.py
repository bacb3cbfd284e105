"""The real assistant for conversation tests: Rasa server + action server as processes.

Both run on free loopback ports against a temporary SQLite loyalty database
and tracker store, with the trained model in ``models/``. Tests talk to the
bot through the web chat channel's token-protected REST entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.channels.webchat import sign
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "loyalty.tar.gz"
SECRET = "conversation-tests"


def require_model() -> None:
    if not MODEL.exists():
        msg = "no trained model at models/loyalty.tar.gz (run `make train`)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; `make test` trains it before pytest", pytrace=False)
        pytest.skip(msg)


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    raise RuntimeError(f"no answer at {url}: {log.read_text()[-3000:]}")


@dataclass
class Stack:
    """A running assistant; ``say`` sends one message as a web chat visitor."""

    workdir: Path
    database_url: str
    port: int
    actions_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def visitor(self) -> str:
        return uuid.uuid4().hex

    def post(self, visitor: str, text: str, message_id: str | None = None, token: str | None = None) -> dict[str, Any]:
        body = json.dumps({
            "visitor": visitor, "token": token if token is not None else sign(visitor, SECRET.encode()),
            "text": text, "id": message_id or uuid.uuid4().hex,
        }, ensure_ascii=False).encode()
        req = urllib.request.Request(
            f"{self.base}/webhooks/webchat/send", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return dict(json.loads(r.read()), status=r.status)
        except urllib.error.HTTPError as e:
            return dict(json.loads(e.read() or b"{}"), status=e.code)

    def say(self, visitor: str, text: str) -> list[str]:
        """Send ``text``; return the texts of the bot's replies (buttons appended as lines)."""
        reply = self.post(visitor, text)
        assert reply["status"] == 200, reply
        out = []
        for m in reply.get("messages", []):
            lines = [m.get("text", "")] + [f"[{b['title']}]" for b in m.get("buttons", [])]
            out.append("\n".join(x for x in lines if x))
        return out

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def start_stack(workdir: Path, database_url: str) -> Stack:
    """Start the action server and Rasa (with the web chat channel) on free ports."""
    require_model()
    stack = Stack(workdir, database_url, free_port(), free_port())
    (workdir / "endpoints.yml").write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{stack.actions_port}/webhook"\n'
        f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{workdir / "tracker.db"}"\n'
    )
    (workdir / "credentials.yml").write_text("bot.channels.webchat.WebchatInput:\n  allow_rest: true\n")
    env = {
        **os.environ,
        "LOYALTY_DATABASE_URL": database_url,
        "WEBCHAT_SECRET": SECRET,
        "LOYALTY_VAR_DIR": str(workdir),
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    bin_dir = Path(sys.executable).parent
    logs = workdir / "actions.log", workdir / "rasa.log"
    actions = subprocess.Popen(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(stack.actions_port)],
        cwd=ROOT, env=env, stdout=logs[0].open("wb"), stderr=subprocess.STDOUT,
    )
    stack.procs.append(actions)
    rasa = subprocess.Popen(
        [str(bin_dir / "rasa"), "run", "--model", str(MODEL), "--endpoints", str(workdir / "endpoints.yml"),
         "--credentials", str(workdir / "credentials.yml"), "--port", str(stack.port), "--interface", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=logs[1].open("wb"), stderr=subprocess.STDOUT,
    )
    stack.procs.append(rasa)
    try:
        _wait(f"http://127.0.0.1:{stack.actions_port}/health", actions, logs[0])
        _wait(f"{stack.base}/", rasa, logs[1])
    except Exception:
        stack.stop()
        raise
    return stack
