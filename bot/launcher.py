"""Start everything `make run` promises: action server, loyalty API, Rasa with the channels.

``python -m bot.launcher`` starts the three processes, the staff app and the outreach
scheduler (and the fake SMS gateway when no SMS provider is configured), waits until each answers,
prints where to open the web chat, the agent console, the staff app and the fake SMS page, and keeps
them running: one that exits is started again after a pause that doubles
with each quick failure (1 s, 2 s, 4 s … at most 30 s), while the others go
on serving. Ctrl-C or SIGTERM stops them all. ``--shell`` talks to the bot
in this terminal instead.

The action server only answers calls that carry ``ACTION_SERVER_TOKEN``; when
it is unset the launcher makes one (kept in ``$LOYALTY_VAR_DIR``, mode 0600)
and hands it to both the action server and Rasa. ``ACTION_SERVER_URL`` (read
by endpoints.yml) defaults to the action server started here.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bot import cluster, rasa_run
from bot.files import private_files
from bot.settings import dev_secret, log_format
from loyalty.config import from_env

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Restart pauses: doubled after each failure, capped; a child that stayed up
# this long is healthy again and the next failure starts from the first pause.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0


def say(text: str) -> None:
    """One line of the launcher's own log."""
    print(f"[launcher {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _wait(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode}; see the lines above.")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{name} did not answer at {url} within {timeout:.0f} s")


@dataclass
class Child:
    """One supervised process and its restart state."""

    name: str
    cmd: list[str]
    health: str | None
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] | None = None  # None: the launcher's own environment
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None

    def start(self, now: float) -> None:
        """Start the process; ``now`` is the supervisor's clock."""
        self.proc = subprocess.Popen(self.cmd, env=self.env)
        self.started_at = now
        self.restart_at = None
        say(f"started {self.name} (pid {self.proc.pid})")

    def backoff(self) -> float:
        """The pause before the next restart, from the failures in a row so far."""
        return min(BACKOFF_FIRST * 2 ** max(self.failures - 1, 0), BACKOFF_MAX)


def _fake_sms() -> list[Child]:
    """The fake SMS gateway, when codes are not sent through a real provider (SMS_PROVIDER unset or fake)."""
    sms = from_env().sms
    if sms.provider != "fake":
        return []
    where = urlsplit(sms.fake_url)
    port = where.port or 8090
    return [Child("fake SMS gateway", [sys.executable, "-m", "loyalty.sms", "--host", where.hostname or "127.0.0.1",
                                       "--port", str(port)], f"http://127.0.0.1:{port}/_fake/health")]


class Supervisor:
    """Starts children in order, restarts any that exits, stops all on request."""

    def __init__(self, children: list[Child], clock: Callable[[], float] = time.monotonic) -> None:
        self.children = children
        self.clock = clock
        self.stopping = False

    def start_all(self) -> None:
        """Start each child and wait until it answers; a failure here is fatal (bad configuration)."""
        for child in self.children:
            say(f"starting {child.name} …")
            child.start(self.clock())
            if child.health and child.proc is not None:
                _wait(child.health, child.proc, child.name)

    def check(self) -> None:
        """One round: notice exits, schedule restarts with backoff, restart those due."""
        now = self.clock()
        for child in self.children:
            proc = child.proc
            if child.restart_at is None and proc is not None and proc.poll() is not None:
                if now - child.started_at >= STABLE_AFTER:
                    child.failures = 0
                child.failures += 1
                pause = child.backoff()
                child.restart_at = now + pause
                say(f"{child.name} (pid {proc.pid}) exited with code {proc.returncode}; "
                    f"restarting in {pause:g} s (failure {child.failures} in a row)")
            if child.restart_at is not None and now >= child.restart_at and not self.stopping:
                child.start(now)

    def run(self, foreground: Child | None = None, poll: float = 0.5) -> int:
        """Supervise until stopped; with ``foreground`` (the shell), return when it exits."""
        while not self.stopping:
            if foreground is not None and foreground.proc is not None and foreground.proc.poll() is not None:
                return foreground.proc.returncode
            self.check()
            time.sleep(poll)
        return 0

    def stop(self) -> None:
        """Terminate every child, then kill those that do not exit within 10 s."""
        self.stopping = True
        procs = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def credentials(var_dir: Path) -> str:
    """credentials.yml, less the WeChat channel when WeChat is not configured (WECHAT_TOKEN unset)."""
    if os.environ.get("WECHAT_TOKEN"):
        return "credentials.yml"
    path = var_dir / "credentials.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (ROOT / "credentials.yml").read_text().splitlines()
    path.write_text("\n".join(line for line in lines if not line.startswith("bot.wechat.channel")) + "\n")
    say("WeChat is not configured (WECHAT_TOKEN unset): starting the web chat only.")
    return str(path)


def action_server_env(actions_host: str, actions_port: int, var_dir: Path) -> None:
    """Give Rasa and the action server one token and the action server's URL (unless set already)."""
    if not os.environ.get("ACTION_SERVER_TOKEN"):
        os.environ["ACTION_SERVER_TOKEN"] = dev_secret(str(var_dir), "action_server.token").decode()
    if not os.environ.get("ACTION_SERVER_URL"):
        host = "127.0.0.1" if actions_host in ("", "0.0.0.0", "::") else actions_host
        os.environ["ACTION_SERVER_URL"] = f"http://{host}:{actions_port}/webhook"


def log_env() -> None:
    """With ``LOG_FORMAT=json``, keep import-time warnings (printed before logging is set up) out of the logs."""
    if log_format() == "json":
        os.environ.setdefault("PYTHONWARNINGS", "ignore")


def commands(args: argparse.Namespace, var_dir: Path) -> list[Child]:
    """The processes to start, in order."""
    py = sys.executable
    endpoints = os.environ.get("RASA_ENDPOINTS", "endpoints.yml")

    # Through bot.rasa_run so that logging is ours from the first line (LOG_FORMAT=json).
    def rasa(port: int) -> list[str]:
        return [py, "-m", "bot.rasa_run", "run", "--model", args.model, "--endpoints", endpoints,
                "--credentials", credentials(var_dir), "--port", str(port), "--interface", args.host]

    def actions(port: int) -> list[str]:
        return [py, "-m", "bot.action_server", "--actions", "actions", "--host", args.actions_host,
                "--port", str(port)]

    api = Child("loyalty API", [py, "-m", "loyalty", "serve", "--host", args.host, "--port", str(args.api_port)],
                f"http://127.0.0.1:{args.api_port}/api/v1/health")
    # Journeys and broadcasts (docs/outreach.md; more than one scheduler may run) and the staff app.
    services = [
        Child("outreach scheduler", [py, "-m", "bot.outreach"], None),
        Child("staff app", [py, "-m", "bot.staff", "--host", args.host, "--port", str(args.staff_port)],
              f"http://127.0.0.1:{args.staff_port}/staff/health"),
    ]
    # Rasa's memory settings (bot/rasa_run.py): some must be in its environment as it starts.
    rasa_env = rasa_run.environment(os.environ)
    if args.shell:
        shell = [py, "-m", "bot.rasa_run", "shell", "--model", args.model, "--endpoints", endpoints]
        return [*_fake_sms(), Child("action server", actions(args.actions_port),
                                    f"http://127.0.0.1:{args.actions_port}/health"), api, *services,
                Child("assistant", shell, None, env=rasa_env)]
    if args.replicas <= 1:
        return [*_fake_sms(), Child("action server", actions(args.actions_port),
                                    f"http://127.0.0.1:{args.actions_port}/health"), api, *services,
                Child("assistant", rasa(args.port), f"http://127.0.0.1:{args.port}/", env=rasa_env)]
    cluster.check_environment(os.environ)
    children = [*_fake_sms(), api, *services]
    ports = cluster.rasa_ports(args.port, args.replicas)
    for i, port in enumerate(ports):
        actions_port = args.actions_port + i
        env = {**rasa_env, "ACTION_SERVER_URL": f"http://127.0.0.1:{actions_port}/webhook"}
        children += [
            Child(f"action server {i + 1}", actions(actions_port), f"http://127.0.0.1:{actions_port}/health"),
            Child(f"assistant {i + 1}", rasa(port), f"http://127.0.0.1:{port}/", env=env),
        ]
    nginx, _ = cluster.write_nginx(f"{args.host}:{args.port}", ports, var_dir)
    children.append(Child("nginx", nginx, f"http://127.0.0.1:{args.port}/"))
    return children


def main(argv: list[str] | None = None) -> int:
    """Start, supervise, and stop on Ctrl-C or SIGTERM."""
    p = argparse.ArgumentParser(prog="python -m bot.launcher", description=__doc__)
    p.add_argument("--shell", action="store_true", help="chat in the terminal instead of starting the channels")
    p.add_argument("--model", default="models/loyalty.tar.gz")
    p.add_argument("--host", default=os.environ.get("BOT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BOT_PORT", "5005")))
    p.add_argument("--actions-host", default=os.environ.get("ACTIONS_HOST") or "127.0.0.1")
    p.add_argument("--actions-port", type=int, default=int(os.environ.get("ACTIONS_PORT", "5055")))
    p.add_argument("--staff-port", type=int, default=int(os.environ.get("STAFF_PORT", "5010")))
    p.add_argument("--replicas", type=int, default=int(os.environ.get("BOT_REPLICAS", "1")),
                   help="Rasa processes (each with an action server) behind nginx on --port; needs the "
                        "production endpoints (bot/cluster.py)")
    p.add_argument("--api-port", type=int, default=int(os.environ.get("LOYALTY_API_PORT", "8081")))
    args = p.parse_args(argv)
    os.chdir(ROOT)
    # Before anything starts: the databases and secrets they create are owner-only.
    private_files(ROOT / os.environ.get("LOYALTY_VAR_DIR", "var"))
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    var_dir = Path(os.environ.get("LOYALTY_VAR_DIR") or "var")
    log_env()
    action_server_env(args.actions_host, args.actions_port, var_dir)
    children = commands(args, var_dir)
    supervisor = Supervisor(children)

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        supervisor.start_all()
        if args.shell:
            return supervisor.run(foreground=children[-1])
        base = f"http://{args.host}:{args.port}"
        sms = from_env().sms
        fake_sms = f"  Fake SMS codes: {sms.fake_url}\n" if sms.provider == "fake" else ""
        print(
            "\nReady.\n"
            f"  Web chat:       {base}/webhooks/webchat/   (try ?store=SH001 or ?lang=en)\n"
            f"  Agent console:  {base}/webhooks/console/\n"
            f"  WeChat webhook: {base}/webhooks/wechat/webhook\n"
            f"  Loyalty API:    http://{args.host}:{args.api_port}/api/v1/health\n"
            f"  Staff app:      http://{args.host}:{args.staff_port}/staff/   (an account: python -m loyalty staff "
            "create NAME --role supervisor)\n"
            f"{fake_sms}"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        return supervisor.run()
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C or SIGTERM must not cut the shutdown short and orphan a child.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping …")
        supervisor.stop()


if __name__ == "__main__":
    sys.exit(main())
