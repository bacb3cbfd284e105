"""Does a turn cost more as the conversation grows? A long conversation against fresh ones, interleaved.

Starts the assistant (Rasa + action server, web chat channel, the console's
event broker as in production) on a seeded loyalty database, with the tracker
store on SQLite or PostgreSQL. Shopper A (a member) chats ``--turns`` turns
in one conversation; after each of A's turns a fresh shopper B takes one
(a new B every ``--fresh-every`` turns), so both see the same machine load.
The messages rotate through points, coupons, recommendations and thanks, in
Chinese and English. Prints the median latency by turn of A beside B's in
the same stretch, the ratio, and the last 20 turns' ratio (the goal: ≤ ×1.3
at turn 400).

    .venv/bin/python -m bench.turn_cost                          # SQLite and PostgreSQL, 400 turns
    .venv/bin/python -m bench.turn_cost --stores sqlite --turns 100
    .venv/bin/python -m bench.turn_cost --tracker SQL            # Rasa's own SQL tracker store (before)
    .venv/bin/python -m bench.turn_cost --profile results/turn   # cProfile of the Rasa process, top functions

``--tracker`` takes a tracker store class (default ``bot.tracker_store.BoundedSQLTrackerStore``).
"""

from __future__ import annotations

import argparse
import pstats
import signal
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from loyalty import db
from tests.e2e.conftest import seed_minimal
from tests.support.members import make_member
from tests.support.servers import PgServer, start_postgres
from tests.support.stack import Stack, start_stack

TEXTS = ["我的积分有多少", "有什么优惠券", "推荐点护肤品", "谢谢", "how many points do I have",
         "what coupons can I get", "recommend something for me", "thanks"]
BUCKET = 50


def turn_ms(stack: Stack, visitor: str, i: int) -> float:
    t = time.perf_counter()
    reply = stack.post(visitor, TEXTS[i % len(TEXTS)])
    elapsed = (time.perf_counter() - t) * 1000
    if reply.get("status") != 200:
        raise RuntimeError(f"turn {i} failed: {reply}")
    return elapsed


def member(stack: Stack) -> str:
    visitor = stack.visitor()
    make_member("webchat", f"web-{visitor}", 500)
    return visitor


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


MEMORY: dict[str, tuple[float, float, float]] = {}  # store → (seconds to ready, RSS after start, RSS at the end)


def run(store: str, work: Path, args: argparse.Namespace, pg: PgServer | None) -> list[tuple[float, float]]:
    if store == "postgres":
        assert pg is not None
        admin = db.make_engine(f"{pg.base_url}/postgres", isolation_level="AUTOCOMMIT")
        tag = f"{int(time.time())}"
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE bench_loyalty_{tag}"))
            c.execute(text(f"CREATE DATABASE bench_tracker_{tag}"))
        admin.dispose()
        url, tracker_url = f"{pg.base_url}/bench_loyalty_{tag}", f"{pg.base_url}/bench_tracker_{tag}"
    else:
        url, tracker_url = f"sqlite:///{work / 'loyalty.db'}", None
    seed_minimal(url)
    engine = db.make_engine(url)
    db.configure(engine)
    prefix = None
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        prefix = ["python", "-m", "cProfile", "-o", str(Path(args.profile).resolve() / f"{store}.prof")]
        prefix[0] = __import__("sys").executable
    started = time.perf_counter()
    stack = start_stack(work, url, tracker_url=tracker_url, tracker_type=args.tracker, rasa_prefix=prefix)
    ready = time.perf_counter() - started
    rss_start = rss_mb(stack.rasa_pid)
    times: list[tuple[float, float]] = []
    try:
        a = member(stack)
        b = member(stack)
        for i in range(3):  # warm up the model's caches
            turn_ms(stack, stack.visitor(), i)
        for i in range(args.turns):
            if i and i % args.fresh_every == 0:
                b = member(stack)
            first, second = ((a, b) if i % 2 == 0 else (b, a))
            t1 = turn_ms(stack, first, i)
            t2 = turn_ms(stack, second, i)
            times.append((t1, t2) if first == a else (t2, t1))
            if args.verbose and (i + 1) % 25 == 0:
                print(f"  {store}: turn {i + 1}: A {times[-1][0]:.0f} ms, B {times[-1][1]:.0f} ms", flush=True)
        MEMORY[store] = (ready, rss_start, rss_mb(stack.rasa_pid))
    finally:
        if args.profile:
            proc = stack.proc("rasa")
            proc.send_signal(signal.SIGINT)  # Sanic stops cleanly and cProfile writes its file
            proc.wait(60)
        stack.stop()
        engine.dispose()
    return times


def report(store: str, tracker: str, times: list[tuple[float, float]]) -> None:
    print(f"\n{store} tracker store ({tracker}): median ms of A's turns (one conversation) and B's (fresh), "
          "interleaved")
    print(f"  {'turns':>9}  {'A long':>8}  {'B fresh':>8}  {'A/B':>6}")
    for start in range(0, len(times), BUCKET):
        chunk = times[start:start + BUCKET]
        a = statistics.median(t[0] for t in chunk)
        b = statistics.median(t[1] for t in chunk)
        print(f"  {start + 1:>4}–{start + len(chunk):<4}  {a:8.0f}  {b:8.0f}  {a / b:6.2f}")
    last = times[-20:]
    a, b = statistics.median(t[0] for t in last), statistics.median(t[1] for t in last)
    tenth = times[9][0] if len(times) >= 10 else times[0][0]
    print(f"  last 20 turns ({len(times) - len(last) + 1}–{len(times)}): A {a:.0f} ms, B {b:.0f} ms, "
          f"ratio A/B ×{a / b:.2f} (goal ≤ ×1.3); ×{a / tenth:.1f} A's tenth turn")


def show_profile(path: Path, top: int) -> None:
    print(f"\nprofile of the Rasa process ({path.name}), by cumulative time:")
    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite, postgres or both (comma)")
    parser.add_argument("--tracker", default="bot.tracker_store.BoundedSQLTrackerStore",
                        help="tracker store type for endpoints.yml (SQL: Rasa's own)")
    parser.add_argument("--fresh-every", type=int, default=5, help="B is a new shopper every N turns")
    parser.add_argument("--profile", default="", help="folder for cProfile files of the Rasa process")
    parser.add_argument("--top", type=int, default=30, help="functions shown from each profile")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    pg = start_postgres() if "postgres" in stores else None
    results = {}
    try:
        for store in stores:
            work = Path(tempfile.mkdtemp(prefix=f"turn-cost-{store}-"))
            results[store] = run(store, work, args, pg)
    finally:
        if pg is not None:
            pg.stop()
    for store, times in results.items():
        report(store, args.tracker, times)
    for store, (ready, rss0, rss1) in MEMORY.items():
        print(f"\n{store}: Rasa + action server ready in {ready:.0f} s; Rasa RSS {rss0:.0f} MB after start, "
              f"{rss1:.0f} MB after {2 * len(results[store]) + 3} turns")
    if args.profile:
        for store in results:
            show_profile(Path(args.profile) / f"{store}.prof", args.top)


if __name__ == "__main__":
    main()
