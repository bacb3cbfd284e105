"""The real assistant for conversation tests: Rasa server + action server as processes.

Both run on free loopback ports against a temporary SQLite loyalty database
and tracker store, with the trained model in ``models/``. Tests talk to the
bot through the web chat channel's token-protected REST entry. The agent
console is mounted too (``Stack.console``), fed by its event broker, as in
production.
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

from bot.webchat.channel import sign
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "loyalty.tar.gz"
SECRET = "conversation-tests"
CONSOLE_SECRET = "conversation-tests-console-secret"


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
class _Launch:
    """How one process of the stack is started (kept so it can be restarted)."""

    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    health: str

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self.log.open("ab"),
                                stderr=subprocess.STDOUT)


@dataclass
class Stack:
    """A running assistant; ``say`` sends one message as a web chat visitor."""

    workdir: Path
    database_url: str
    port: int
    actions_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    launches: dict[str, _Launch] = field(default_factory=dict)

    def restart(self, name: str, env_extra: dict[str, str] | None = None) -> None:
        """Stop one process ("actions" or "rasa") and start it again, as a crash or a deploy would."""
        launch = self.launches[name]
        index = list(self.launches).index(name)
        old = self.procs[index]
        old.terminate()
        try:
            old.wait(20)
        except subprocess.TimeoutExpired:
            old.kill()
        if env_extra:
            launch.env = {**launch.env, **env_extra}
        self.procs[index] = launch.start()
        _wait(launch.health, self.procs[index], launch.log)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def console(self) -> str:
        """The agent console's base URL (its page is this plus "/")."""
        return f"{self.base}/webhooks/console"

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


def start_stack(
    workdir: Path,
    database_url: str,
    *,
    console: bool = True,
    assistant: Path | None = None,
    env_extra: dict[str, str] | None = None,
    extra_channels: str = "",
) -> Stack:
    """Start the action server and Rasa (with the web chat channel and the console) on free ports.

    ``assistant``: a folder with another ``models/loyalty.tar.gz`` and ``actions/``
    to run instead of this checkout's (e.g. a trial of domain changes); the
    code of ``bot`` and ``loyalty`` still comes from here. ``extra_channels``:
    more credentials.yml entries (e.g. the WeChat channel, configured by ``env_extra``).
    """
    model = (assistant / "models" / "loyalty.tar.gz") if assistant else MODEL
    if assistant is None:
        require_model()
    elif not model.exists():
        pytest.skip(f"no trained model at {model}")
    stack = Stack(workdir, database_url, free_port(), free_port())
    broker = "event_broker:\n  type: bot.console.broker.ConsoleBroker\n" if console else ""
    (workdir / "endpoints.yml").write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{stack.actions_port}/webhook"\n'
        f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{workdir / "tracker.db"}"\n' + broker
    )
    channels = "bot.webchat.channel.WebchatInput:\n  allow_rest: true\n"
    if console:
        channels += "bot.console.channel.ConsoleInput:\n  poll_seconds: 1\n"
    (workdir / "credentials.yml").write_text(channels + extra_channels)
    env = {
        **os.environ,
        "LOYALTY_DATABASE_URL": database_url,
        "WEBCHAT_SECRET": SECRET,
        "CONSOLE_SECRET": CONSOLE_SECRET,
        "LOYALTY_VAR_DIR": str(workdir),
        "LOYALTY_MODEL_DIR": str(workdir / "reco-models"),
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": os.pathsep.join(str(p) for p in (assistant, ROOT) if p),
        **(env_extra or {}),
    }
    bin_dir = Path(sys.executable).parent
    stack.launches = {
        "actions": _Launch(
            [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(stack.actions_port)],
            assistant or ROOT, env, workdir / "actions.log", f"http://127.0.0.1:{stack.actions_port}/health",
        ),
        "rasa": _Launch(
            [str(bin_dir / "rasa"), "run", "--model", str(model), "--endpoints", str(workdir / "endpoints.yml"),
             "--credentials", str(workdir / "credentials.yml"), "--port", str(stack.port),
             "--interface", "127.0.0.1"],
            ROOT, env, workdir / "rasa.log", f"{stack.base}/",
        ),
    }
    try:
        procs = [stack.launches[name].start() for name in ("actions", "rasa")]
        stack.procs.extend(procs)
        for name, proc in zip(("actions", "rasa"), procs, strict=False):
            launch = stack.launches[name]
            _wait(launch.health, proc, launch.log)
    except Exception:
        stack.stop()
        raise
    return stack
