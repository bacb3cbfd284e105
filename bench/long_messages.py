"""What a 100 KB message costs on each way into the running assistant.

Starts the real stack (Rasa with the trained model, the web chat, WeChat and
Rasa's REST channel; the action server; a fresh SQLite database), then sends
``--count`` messages of ``--size`` bytes on each path and prints the time to
the answer (p50 / p95 / max) and the Rasa process's resident memory before
and after. The channels refuse such a message; Rasa's REST channel has no
limit of its own, so there the NLU guard cuts the text and a whole turn runs.

    .venv/bin/python -m bench.long_messages [--count 50] [--size 100000] [--no-rasa-rest]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from tests.e2e.conftest import seed_minimal
from tests.e2e.test_long_messages import rss_mb, socket_frame, webchat_rest, wechat
from tests.support.stack import Stack, start_stack


def _rasa_rest(stack: Stack, text: str) -> float:
    started = time.perf_counter()
    res = requests.post(f"{stack.base}/webhooks/rest/webhook",
                        json={"sender": f"bench-{uuid.uuid4().hex}", "message": text}, timeout=120)
    res.raise_for_status()
    return time.perf_counter() - started


def paths(stack: Stack, text: str, rasa_rest: bool) -> dict[str, Callable[[], float]]:
    """Name → one send of ``text`` on that path, returning the seconds to the answer."""
    out: dict[str, Callable[[], float]] = {
        "WeChat plain (refused, passive reply)": lambda: wechat(stack, text, aes=False)[0],
        "WeChat AES (refused, passive reply)": lambda: wechat(stack, text, aes=True)[0],
        "web chat socket (frame closed, 1009)": lambda: socket_frame(stack)[0],
        "web chat REST (413 + text)": lambda: webchat_rest(stack, text)[0],
    }
    if rasa_rest:
        out["Rasa REST (cut by the NLU guard, full turn)"] = lambda: _rasa_rest(stack, text)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))] * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.long_messages", description=__doc__)
    p.add_argument("--count", type=int, default=50, help="messages per path (default 50)")
    p.add_argument("--size", type=int, default=100_000, help="bytes of UTF-8 per message (default 100000)")
    p.add_argument("--no-rasa-rest", action="store_true", help="skip Rasa's REST channel (a full turn each)")
    args = p.parse_args(argv)
    text = "积分" * (args.size // 6)  # 3 bytes a character
    with tempfile.TemporaryDirectory(prefix="bench-long-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'loyalty.db'}"
        seed_minimal(url)
        print("starting the stack …", flush=True)
        stack = start_stack(work, url, wechat=True, rest=True)
        try:
            print(f"{args.count} messages of {len(text.encode()) / 1000:.0f} KB per path; "
                  f"Rasa pid {stack.rasa_pid}\n")
            first = rss_mb(stack.rasa_pid)
            for name, send in paths(stack, text, not args.no_rasa_rest).items():
                for _ in range(3):  # warm-up: first uses of a path allocate for good
                    send()
                before = rss_mb(stack.rasa_pid)
                times = [send() for _ in range(args.count)]
                after = rss_mb(stack.rasa_pid)
                print(f"  {name:<44} p50 {pct(times, 50):7.1f} ms  p95 {pct(times, 95):7.1f} ms  "
                      f"max {max(times) * 1000:7.1f} ms  mean {statistics.mean(times) * 1000:7.1f} ms   "
                      f"RSS {before:7.1f} → {after:7.1f} MB", flush=True)
            print(f"\n  Rasa RSS at start {first:.1f} MB, at the end {rss_mb(stack.rasa_pid):.1f} MB")
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
