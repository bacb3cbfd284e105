"""The real assistant for conversation tests: Rasa server + action server as processes.

Both run on free loopback ports against a temporary SQLite loyalty database
and tracker store (or a PostgreSQL tracker store, ``tracker_url``), with the
trained model in ``models/``. Tests talk to the bot through the web chat
channel's token-protected REST entry. The agent console is mounted too
(``Stack.console``), fed by its event broker, as in production. The action
server is ours (``bot.action_server``) and Rasa calls it with ``ACTION_TOKEN``.

``endpoints=`` runs Rasa with a given endpoints file instead of the SQLite
one written here (its ``${VAR}``s come from ``env_extra``; ACTION_SERVER_URL
and ACTION_SERVER_TOKEN are set to this stack's). ``wechat_api=`` mounts the
WeChat channel talking to a fake WeChat API at that base URL (``Stack.wechat``
plays WeChat's servers); ``wechat=True`` mounts it with passive replies only.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot import rasa_run
from bot.webchat.channel import sign
from bot.wechat.dev.simulate import WeChatSide
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "loyalty.tar.gz"
SECRET = "conversation-tests"
CONSOLE_SECRET = "conversation-tests-console-secret"
# The WeChat channel, when mounted (``wechat=True``): plain and AES callbacks, passive replies only.
WECHAT_TOKEN = "stack-wechat-token"
WECHAT_APP_ID = "wx00000000stack00"
WECHAT_AES_KEY = base64.b64encode(bytes(range(100, 132))).decode()[:-1]
ACTION_TOKEN = "conversation-tests-action-server-token"
# The WeChat official account the stack plays when started with ``wechat_api``.
WECHAT = {
    "WECHAT_TOKEN": "conversation-tests-wechat",
    "WECHAT_APP_ID": "wx00e2e000000000001",
    "WECHAT_APP_SECRET": "conversation-tests-wechat-secret",
}


def require_model() -> None:
    if not MODEL.exists():
        msg = "no trained model at models/loyalty.tar.gz (run `make train`)"
        if os.environ.get("CI"):
            pytest.fail(msg + "; `make test` trains it before pytest", pytrace=False)
        pytest.skip(msg)


def load_agent(**kwargs: Any) -> Any:
    """The trained model in this process, loaded as ``python -m bot.rasa_run`` loads it.

    DIET and TED read their saved weights without tracing a training step
    (bot/model_loading.py): a few seconds instead of Rasa's own ~40.
    """
    require_model()
    from rasa.core.agent import Agent

    from bot import model_loading

    model_loading.install()
    return Agent.load(str(MODEL), **kwargs)


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
    # SQLAlchemy URL of Rasa's tracker store (its ``events`` table).
    tracker_url: str = ""
    wechat_side: WeChatSide | None = None

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

    def proc(self, name: str) -> subprocess.Popen[bytes]:
        """The running process "actions" or "rasa"."""
        return self.procs[list(self.launches).index(name)]

    def kill(self, name: str) -> None:
        """Kill one process at once (SIGKILL), as a crash would; ``revive`` starts it again."""
        proc = self.proc(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(20)

    def revive(self, name: str) -> None:
        """Start a killed process again and wait until it answers."""
        launch = self.launches[name]
        index = list(self.launches).index(name)
        self.procs[index] = launch.start()
        _wait(launch.health, self.procs[index], launch.log)

    def wechat(self, openid: str, text: str) -> tuple[str | None, int]:
        """Send a text as WeChat would; the passive reply's text (None for "success") and the HTTP status."""
        assert self.wechat_side is not None, "start the stack with wechat_api="
        params, body = self.wechat_side.sign(self.wechat_side.text(openid, text))
        req = urllib.request.Request(f"{self.base}/webhooks/wechat/webhook?{urllib.parse.urlencode(params)}",
                                     data=body, headers={"Content-Type": "text/xml"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return self.wechat_side.open_reply(r.read().decode()).text, r.status
        except urllib.error.HTTPError as e:
            return None, e.code

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

    def tracker_rows(self, sender_id: str | None = None) -> list[dict[str, Any]]:
        """Rows of the tracker store's ``events`` table (one sender's, or all), oldest first."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.tracker_url, future=True)
        try:
            with engine.connect() as c:
                sql = "SELECT sender_id, type_name, intent_name, action_name, data FROM events"
                if sender_id is None:
                    rows = c.execute(text(sql + " ORDER BY id"))
                else:
                    rows = c.execute(text(sql + " WHERE sender_id = :s ORDER BY id"), {"s": sender_id})
                return [dict(r._mapping) for r in rows]
        finally:
            engine.dispose()

    @property
    def rasa_pid(self) -> int:
        """The Rasa server's process id (for memory figures)."""
        return self.procs[list(self.launches).index("rasa")].pid

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGCONT)  # a test may have left one stopped
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
    tracker_url: str | None = None,
    wechat: bool = False,
    rest: bool = False,
    endpoints: Path | None = None,
    wechat_api: str | None = None,
    extra_channels: str = "",
    tracker_type: str = "bot.tracker_store.BoundedSQLTrackerStore",
    rasa_prefix: list[str] | None = None,
) -> Stack:
    """Start the action server and Rasa (with the web chat channel and the console) on free ports.

    ``assistant``: a folder with another ``models/loyalty.tar.gz`` and ``actions/``
    to run instead of this checkout's (e.g. a trial of domain changes); the
    code of ``bot`` and ``loyalty`` still comes from here. ``tracker_url``: an
    existing database for Rasa's SQL tracker store (e.g. PostgreSQL) instead of
    ``workdir/tracker.db``. ``wechat``: mount the WeChat channel too (signed
    with ``WECHAT_TOKEN``/``WECHAT_AES_KEY``; no app secret, so replies are
    passive only). ``rest``: mount Rasa's own REST channel (/webhooks/rest/webhook). ``extra_channels``:
    more credentials.yml entries (e.g. the WeChat channel, configured by ``env_extra``).
    ``tracker_type``: the tracker store class (``SQL`` for Rasa's own, as benchmarks compare).
    ``rasa_prefix``: the interpreter command that runs ``-m bot.rasa_run`` (e.g. ``python -m cProfile -o F``).
    """
    model = (assistant / "models" / "loyalty.tar.gz") if assistant else MODEL
    if assistant is None:
        require_model()
    elif not model.exists():
        pytest.skip(f"no trained model at {model}")
    stack = Stack(workdir, database_url, free_port(), free_port())
    broker = "event_broker:\n  type: bot.console.broker.ConsoleBroker\n" if console else ""
    if tracker_url:
        # Rasa takes a whole SQLAlchemy URL in `url`; the dialect must still be named.
        dialect = tracker_url.split(":", 1)[0].split("+", 1)[0]
        tracker = f'tracker_store:\n  type: {tracker_type}\n  dialect: "{dialect}"\n  url: "{tracker_url}"\n'
        stack.tracker_url = tracker_url
    else:
        tracker = f'tracker_store:\n  type: {tracker_type}\n  dialect: "sqlite"\n  db: "{workdir / "tracker.db"}"\n'
        stack.tracker_url = f"sqlite:///{workdir / 'tracker.db'}"
    if endpoints is None:
        endpoints = workdir / "endpoints.yml"
        endpoints.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{stack.actions_port}/webhook"\n'
            f'  headers:\n    Authorization: "Bearer {ACTION_TOKEN}"\n' + tracker + broker
        )
    # /metrics, /health and /health/ready at the root, as in credentials.yml.
    channels = "bot.webchat.channel.WebchatInput:\n  allow_rest: true\nbot.ops.OpsInput: {}\n"
    if console:
        channels += "bot.console.channel.ConsoleInput:\n  poll_seconds: 1\n"
    wechat_env: dict[str, str] = {}
    if wechat_api:
        channels += "bot.wechat.channel.WeChatInput: {}\n"
        wechat_env = {**WECHAT, "WECHAT_API_BASE_URL": wechat_api}
        stack.wechat_side = WeChatSide(WECHAT["WECHAT_TOKEN"], WECHAT["WECHAT_APP_ID"])
    elif wechat:
        channels += "bot.wechat.channel.WeChatInput: {}\n"
        wechat_env = {"WECHAT_TOKEN": WECHAT_TOKEN, "WECHAT_APP_ID": WECHAT_APP_ID,
                      "WECHAT_AES_KEY": WECHAT_AES_KEY, "WECHAT_APP_SECRET": ""}
    if rest:
        channels += "rest: {}\n"
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
        "ACTION_SERVER_TOKEN": ACTION_TOKEN,
        "ACTION_SERVER_URL": f"http://127.0.0.1:{stack.actions_port}/webhook",
        **wechat_env,
        **(env_extra or {}),
    }
    # As the launcher does: Rasa through bot.rasa_run (our logging from the first line, its memory
    # settings) with the environment the launcher gives it.
    rasa_cmd = [*(rasa_prefix or [sys.executable]), "-m", "bot.rasa_run"]
    rasa_env = rasa_run.environment(env)
    stack.launches = {
        "actions": _Launch(
            [sys.executable, "-m", "bot.action_server", "--actions", "actions", "--port", str(stack.actions_port)],
            assistant or ROOT, env, workdir / "actions.log", f"http://127.0.0.1:{stack.actions_port}/health",
        ),
        "rasa": _Launch(
            [*rasa_cmd, "run", "--model", str(model), "--endpoints", str(endpoints),
             "--credentials", str(workdir / "credentials.yml"), "--port", str(stack.port),
             "--interface", "127.0.0.1"],
            ROOT, rasa_env, workdir / "rasa.log", f"{stack.base}/",
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
