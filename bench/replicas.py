"""Messages per second of one Rasa replica against two, on the production stores, in the same run.

Starts what ``make run-cluster`` runs (bot/cluster.py), on this machine: a
throwaway PostgreSQL server (the loyalty database, seeded, and Rasa's tracker
store) and a throwaway redis-server (the ticket lock store, the web chat
fan-out), then two replicas A and B, each a Rasa process with its own action
server, started as the conversation tests start them (``tests/support/stack.py``)
with ``endpoints.prod.yml`` as ``tests/e2e/test_replicas.py`` does. In front,
two nginx processes configured from ``deploy/nginx-cluster.conf`` as the
launcher does: one with A alone as its upstream, one with A and B (round robin
per request, so one shopper's messages go to both replicas in turn, as behind
the production load balancer). The one-replica phase goes through nginx too,
so both phases pay the same proxy.

Then, for each concurrency C and each of ``--rounds`` rounds: C fresh shoppers
at once through the one-replica nginx, each sending ``--turns`` messages one
after another (the next when the reply is in; bench/throughput.py drives
them), then C other fresh shoppers through the two-replica nginx. The phases
alternate so that both see the same load from other work. The shoppers are
members, so their points and coupon questions run the real actions.

Prints, per phase: msg/s, p50/p95/p99 of the reply time, and the CPU each
process used during it in cores (CPU seconds from /proc over the phase's wall
seconds: Rasa A and B, action servers A and B, PostgreSQL, Redis, nginx, this
client), with the whole machine's busy cores (/proc/stat), the load
average and our processes' CPU milliseconds per message; at the end the
table and the ratio of msg/s two/one for each C (figures: docs/scaling.md,
"Throughput: one replica against two").

    nice .venv/bin/python -m bench.replicas --shoppers 32 --turns 10 --rounds 2
    nice .venv/bin/python -m bench.replicas --shoppers 32,128 --turns 10 --rounds 3   # as in docs/scaling.md
    nice .venv/bin/python -m bench.replicas --shoppers 4 --turns 2 --keep-logs        # a quick look, logs kept

``--keep-logs`` keeps the work folder (Rasa's, the action servers' and nginx's
logs) and prints where; it is kept too when the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.outreach_broadcast import cpu_seconds, postgres_cpu, tree_cpu
from bench.throughput import Result, _drive, members, show
from bot import cluster
from loyalty import db
from tests.e2e.conftest import seed_minimal
from tests.support.servers import PgServer, RedisServer, free_port, start_postgres, start_redis
from tests.support.stack import ROOT, Stack, _wait, start_stack

ONE, TWO = "1 replica", "2 replicas"
PARTS = ("rasa A", "rasa B", "actions A", "actions B", "postgres", "redis", "nginx", "client")


@dataclass
class Front:
    """An nginx in front of some replicas, as ``make run-cluster`` runs it."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Phase:
    """One phase: its result, the cores each part used, the machine's busy cores, the load average."""

    result: Result
    cores: dict[str, float]
    machine: float
    load: float
    wall: float

    def cpu_ms(self) -> float:
        """CPU milliseconds of all our processes per message answered."""
        return sum(self.cores.values()) * self.wall / max(1, self.result.messages) * 1000


def start_front(work: Path, name: str, ports: list[int]) -> Front:
    """nginx on a free port with deploy/nginx-cluster.conf, the given replicas as its upstream."""
    port = free_port()
    cmd, _ = cluster.write_nginx(f"127.0.0.1:{port}", ports, work / name)
    log = work / f"{name}.log"
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    _wait(f"http://127.0.0.1:{port}/", proc, log, timeout=30)
    return Front(proc, port)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    total = sum(ticks[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


Meter = dict[str, Callable[[], float]]


def meters(stacks: list[Stack], pg: PgServer, redis: RedisServer, fronts: list[Front]) -> Meter:
    """Each part's CPU seconds so far."""
    a, b = stacks
    return {
        "rasa A": lambda: cpu_seconds(a.rasa_pid, children=True),
        "rasa B": lambda: cpu_seconds(b.rasa_pid, children=True),
        "actions A": lambda: cpu_seconds(a.proc("actions").pid, children=True),
        "actions B": lambda: cpu_seconds(b.proc("actions").pid, children=True),
        "postgres": lambda: postgres_cpu(pg.datadir),
        "redis": lambda: cpu_seconds(redis.proc.pid),
        "nginx": lambda: sum(tree_cpu(f.proc.pid) for f in fronts),
        "client": lambda: sum(os.times()[:2]),
    }


def phase(label: str, base: str, c: int, turns: int, meter: Meter) -> Phase:
    """C fresh member shoppers × ``turns`` through ``base``, with the CPU each part used meanwhile."""
    who = members(c)
    before = {k: f() for k, f in meter.items()}
    busy0, total0 = machine_ticks()
    started = time.perf_counter()
    r = asyncio.run(_drive(label, base, who, turns))
    wall = time.perf_counter() - started
    busy1, total1 = machine_ticks()
    cores = {k: (f() - before[k]) / wall for k, f in meter.items()}
    machine = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
    p = Phase(r, cores, machine, os.getloadavg()[0], wall)
    print(f"  {label:>10} C={c}: {r.rate:.1f} msg/s, p50 {r.pct(0.5):.0f} ms, p95 {r.pct(0.95):.0f} ms, "
          f"{r.failures} failed; cores: " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
          + f"; machine {machine:.2f} of {os.cpu_count()}; load {p.load:.1f}", flush=True)
    return p


def show_cpu(phases: list[Phase]) -> None:
    """Per phase: cores used by each part, by all of ours, by the machine; load average; CPU ms per message."""
    cols = [*PARTS, "ours", "machine", "load", "CPU ms/msg"]
    print(f"{'cores used':>10}  {'C':>4}  " + "  ".join(f"{c:>9}" for c in cols))
    for p in phases:
        values = [*(p.cores[k] for k in PARTS), sum(p.cores.values()), p.machine, p.load]
        print(f"{p.result.bot:>10}  {p.result.shoppers:>4}  " + "  ".join(f"{v:9.2f}" for v in values)
              + f"  {p.cpu_ms():10.0f}")
    for c, label in sorted({(p.result.shoppers, p.result.bot) for p in phases}):
        mine = [p for p in phases if p.result.bot == label and p.result.shoppers == c]
        if mine:
            print(f"C={c}, {label}: ours {statistics.mean(sum(p.cores.values()) for p in mine):.2f} cores, machine "
                  f"{statistics.mean(p.machine for p in mine):.2f} of {os.cpu_count()} busy on average, "
                  f"{statistics.mean(p.cpu_ms() for p in mine):.0f} CPU ms per message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", default="32", help="concurrent shoppers, comma-separated")
    parser.add_argument("--turns", type=int, default=10, help="messages per shopper")
    parser.add_argument("--rounds", type=int, default=1, help="one replica then two, this many times each")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder with the processes' logs")
    args = parser.parse_args()
    levels = [int(x) for x in args.shoppers.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="replicas-"))
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores; "
          f"starting PostgreSQL, Redis and two replicas in {work} …", flush=True)
    pg = start_postgres()
    redis = start_redis()
    stacks: list[Stack] = []
    fronts: list[Front] = []
    phases: list[Phase] = []
    ok = False
    loyalty: Engine | None = None
    try:
        admin = db.make_engine(pg.base_url + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE loyalty"))
            c.execute(text("CREATE DATABASE tracker"))
        admin.dispose()
        url = f"{pg.base_url}/loyalty"
        seed_minimal(url)  # migrates, seeds, and configures this process's db for the shoppers
        loyalty = db.engine()
        env = {
            "TRACKER_DB_HOST": "127.0.0.1", "TRACKER_DB_PORT": str(pg.port), "TRACKER_DB_NAME": "tracker",
            "TRACKER_DB_USER": "postgres", "TRACKER_DB_PASSWORD": "",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "WEBCHAT_REDIS_URL": redis.url,
        }
        started = time.perf_counter()
        for name in ("a", "b"):
            (work / name).mkdir()
            stacks.append(start_stack(work / name, url, endpoints=ROOT / "endpoints.prod.yml", env_extra=env))
        fronts = [start_front(work, "nginx-one", [stacks[0].port]),
                  start_front(work, "nginx-two", [s.port for s in stacks])]
        print(f"both replicas and nginx up in {time.perf_counter() - started:.0f} s", flush=True)
        # Warm up each replica (the first messages trace TensorFlow functions), then each front.
        for s in stacks:
            asyncio.run(_drive("warm-up", s.base, members(4), 2))
        for f in fronts:
            asyncio.run(_drive("warm-up", f.base, members(2), 2))
        meter = meters(stacks, pg, redis, fronts)
        for _ in range(args.rounds):
            for c in levels:
                phases.append(phase(ONE, fronts[0].base, c, args.turns, meter))
                phases.append(phase(TWO, fronts[1].base, c, args.turns, meter))
        ok = True
    finally:
        for f in fronts:
            f.proc.terminate()
            f.proc.wait(10)
        for s in stacks:
            s.stop()
        if loyalty is not None:
            loyalty.dispose()
        redis.stop()
        pg.stop()
        if ok and not args.keep_logs:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    show([p.result for p in phases], ours=TWO, base=ONE, goal="")
    show_cpu(phases)


if __name__ == "__main__":
    main()
