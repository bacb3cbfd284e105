"""What the Prometheus metrics cost per turn: the same turns with METRICS_ENABLED on and off, in one run.

Starts two assistants (Rasa + action server each) on one seeded SQLite
database, one with metrics and one with ``METRICS_ENABLED=false`` (every
instrument a no-op), warms both up, then sends the same web chat turn
("我的积分有多少": NLU, one custom action, the reply) to each in turn, A/B/A/B,
so drift of the shared machine falls on both alike. Prints the median and p95
of each, and the ratio. Then the instruments alone, in-process: what a turn's
bookkeeping (turn counter and histogram, two action calls, the fallback scan)
costs with and without metrics.

    .venv/bin/python -m bench.metrics_cost [--n 40]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import seed_minimal
from tests.support.stack import Stack, start_stack

TEXT = "我的积分有多少"
MICRO = """
import os, sys, timeit
os.environ["METRICS_ENABLED"] = sys.argv[1]
from rasa.shared.core.events import ActionExecuted, UserUttered
from bot import metrics
events = [UserUttered("hi", {"name": "greet"}), ActionExecuted("action_check_member"), ActionExecuted("utter_x")]
def turn():
    t = metrics.Turn("webchat")
    metrics.action_call("action_session_start", "ok", 0.01)
    metrics.action_call("action_check_member", "ok", 0.01)
    if metrics.ENABLED:
        t.fallbacks.extend(metrics.fallbacks_of(events))
    t.done()
n = 20000
print(min(timeit.repeat(turn, number=n, repeat=5)) / n * 1e6)
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def turn_ms(stack: Stack, visitor: str) -> float:
    t = time.perf_counter()
    stack.say(visitor, TEXT)
    return (time.perf_counter() - t) * 1000


def micro(enabled: bool) -> float:
    out = subprocess.run([sys.executable, "-c", MICRO, "true" if enabled else "false"],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="turns per assistant")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="metrics-cost-"))
    url = f"sqlite:///{work / 'loyalty.db'}"
    seed_minimal(url)
    stacks: dict[str, Stack] = {}
    try:
        for label, flag in (("on", "true"), ("off", "false")):
            (work / label).mkdir()
            stacks[label] = start_stack(work / label, url, console=False, env_extra={"METRICS_ENABLED": flag})
        visitors = {label: s.visitor() for label, s in stacks.items()}
        for label, s in stacks.items():  # warm up: session start, model caches
            for _ in range(5):
                turn_ms(s, visitors[label])
        times: dict[str, list[float]] = {"on": [], "off": []}
        for i in range(args.n):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for label in order:
                times[label].append(turn_ms(stacks[label], visitors[label]))
    finally:
        for s in stacks.values():
            s.stop()
    on, off = times["on"], times["off"]
    print(f"turn '{TEXT}' over the web chat, {args.n} turns each, A/B interleaved")
    print(f"  metrics on : median {statistics.median(on):7.1f} ms   p95 {pct(on, 0.95):7.1f} ms")
    print(f"  metrics off: median {statistics.median(off):7.1f} ms   p95 {pct(off, 0.95):7.1f} ms")
    print(f"  ratio on/off (median): {statistics.median(on) / statistics.median(off):.3f}")
    mon, moff = micro(True), micro(False)
    print("instruments alone, per turn (turn + 2 action calls + fallback scan), in-process:")
    print(f"  metrics on : {mon:6.1f} µs   metrics off: {moff:6.1f} µs")


if __name__ == "__main__":
    main()
