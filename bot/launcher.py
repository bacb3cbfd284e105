"""Start everything `make run` promises: action server, loyalty API, Rasa with the channels.

``python -m bot.launcher`` starts the three processes (and the fake SMS
gateway when no SMS provider is configured), waits until each answers,
prints where to open the web chat, the agent console and the fake SMS page,
and stops them all on Ctrl-C. ``--shell`` talks to the bot in this terminal instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from loyalty.config import from_env

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


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


def credentials() -> str:
    """credentials.yml, less the WeChat channel when WeChat is not configured (WECHAT_TOKEN unset)."""
    if os.environ.get("WECHAT_TOKEN"):
        return "credentials.yml"
    path = ROOT / "var" / "credentials.yml"
    path.parent.mkdir(exist_ok=True)
    lines = (ROOT / "credentials.yml").read_text().splitlines()
    path.write_text("\n".join(line for line in lines if not line.startswith("bot.wechat.channel")) + "\n")
    print("WeChat is not configured (WECHAT_TOKEN unset): starting the web chat only.", flush=True)
    return str(path)


def _fake_sms() -> list[tuple[str, list[str], str | None]]:
    """The fake SMS gateway, when codes are not sent through a real provider (SMS_PROVIDER unset or fake)."""
    sms = from_env().sms
    if sms.provider != "fake":
        return []
    where = urlsplit(sms.fake_url)
    port = where.port or 8090
    return [("fake SMS gateway", [sys.executable, "-m", "loyalty.sms", "--host", where.hostname or "127.0.0.1",
                                  "--port", str(port)], f"http://127.0.0.1:{port}/_fake/health")]


def commands(args: argparse.Namespace) -> list[tuple[str, list[str], str | None]]:
    """(name, command, health URL) of each process to start."""
    py = sys.executable
    endpoints = os.environ.get("RASA_ENDPOINTS", "endpoints.yml")
    rasa = [
        str(BIN / "rasa"), "run", "--model", args.model, "--endpoints", endpoints,
        "--credentials", credentials(), "--port", str(args.port), "--interface", args.host,
    ]
    if args.shell:
        rasa = [str(BIN / "rasa"), "shell", "--model", args.model, "--endpoints", endpoints]
    fake_sms = _fake_sms()
    return [
        *fake_sms,
        ("action server", [py, "-m", "rasa_sdk", "--actions", "actions", "--port", str(args.actions_port)],
         f"http://127.0.0.1:{args.actions_port}/health"),
        ("loyalty API", [py, "-m", "loyalty", "serve", "--host", args.host, "--port", str(args.api_port)],
         f"http://127.0.0.1:{args.api_port}/api/v1/health"),
        ("assistant", rasa, None if args.shell else f"http://127.0.0.1:{args.port}/"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.launcher", description=__doc__)
    p.add_argument("--shell", action="store_true", help="chat in the terminal instead of starting the channels")
    p.add_argument("--model", default="models/loyalty.tar.gz")
    p.add_argument("--host", default=os.environ.get("BOT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BOT_PORT", "5005")))
    p.add_argument("--actions-port", type=int, default=int(os.environ.get("ACTIONS_PORT", "5055")))
    p.add_argument("--api-port", type=int, default=int(os.environ.get("LOYALTY_API_PORT", "8081")))
    args = p.parse_args(argv)
    os.chdir(ROOT)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    procs: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def terminate(*_: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        for name, cmd, health in commands(args):
            print(f"starting {name} …", flush=True)
            proc = subprocess.Popen(cmd)
            procs.append(proc)
            if health:
                _wait(health, proc, name)
        if args.shell:
            return procs[-1].wait()
        base = f"http://{args.host}:{args.port}"
        sms = from_env().sms
        fake_sms = f"  Fake SMS codes: {sms.fake_url}\n" if sms.provider == "fake" else ""
        print(
            "\nReady.\n"
            f"  Web chat:       {base}/webhooks/webchat/   (try ?store=SH001 or ?lang=en)\n"
            f"  Agent console:  {base}/webhooks/console/\n"
            f"  WeChat webhook: {base}/webhooks/wechat/webhook\n"
            f"  Loyalty API:    http://{args.host}:{args.api_port}/api/v1/health\n"
            f"{fake_sms}"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
