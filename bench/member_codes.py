"""Member codes resolved per second at the tills' endpoint, on SQLite and PostgreSQL, with 1 and 16 tills.

For each backend a freshly migrated database (a SQLite file; a throwaway
PostgreSQL server) gets members with a member code each, shown just before
the cell runs (codes live 60 s). The tills' API runs as its own process
(``python -m loyalty.apps.api``, one worker, as ``make run`` starts it); each
till is a thread with its own keep-alive connection posting
``POST /api/v1/member-codes/resolve`` for codes nobody used yet. Every answer
must be 200 for the member the code was shown to; anything else is counted
as an error.

    .venv/bin/python -m bench.member_codes [--backend sqlite|postgresql|both] [--codes 1500]

Figures are printed, never asserted. The machine is shared: the load average
is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import insert
from sqlalchemy.orm import Session

from bench.core_ops import backend
from loyalty import config, db
from loyalty.apikeys import service as apikeys
from loyalty.identity import member_codes
from loyalty.identity.models import MemberCode, MemberCodeKey
from loyalty.members.models import Member

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-identity-secret-0123456789"
CLIENTS = (1, 16)


@dataclass
class Cell:
    backend: str
    clients: int
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


@contextmanager
def database(kind: str) -> Iterator[str]:
    """The URL of a migrated empty database on ``kind``, configured for :func:`db.run`; removed afterwards."""
    with backend(kind) as engine:
        yield engine.url.render_as_string(hide_password=False)


def show_codes(n: int, tag: str) -> list[tuple[str, int]]:
    """``n`` new members, each shown a member code now: (code, member id)."""
    now = db.utcnow()

    def fill(s: Session) -> list[tuple[str, int]]:
        people = [Member(referral_code=f"{tag}{i:08d}", tier="normal", points_balance=0, consent_version="bench",
                         consent_at=now, marketing_opt_in=True, status="active", created_at=now) for i in range(n)]
        s.add_all(people)
        s.flush()
        ids = [m.id for m in people]
        salts = {m: secrets.token_hex(16) for m in ids}
        s.execute(insert(MemberCodeKey), [{"member_id": m, "salt": salts[m], "counter": 1} for m in ids])
        step = member_codes.step_of(now)
        rows, seen = [], set()
        for m in ids:
            code = member_codes.code_for(salts[m], m, step, 1)
            if code in seen:  # never shown twice at once (issue() would move to the next counter)
                continue
            seen.add(code)
            rows.append({"code": code, "step": step, "counter": 1, "member_id": m, "issued_at": now,
                         "expires_at": now + timedelta(seconds=60)})
        s.execute(insert(MemberCode), rows)
        return [(r["code"], r["member_id"]) for r in rows]

    return db.run(fill)


def start_api(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOYALTY_DATABASE_URL": url, "LOYALTY_IDENTITY_SECRET": SECRET,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "loyalty.apps.api", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start")


def run_cell(kind: str, base: str, key: str, clients: int, codes: list[tuple[str, int]]) -> Cell:
    work: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
    for item in codes:
        work.put(item)
    ok, errors = [0], [0]
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def till() -> None:
        http = requests.Session()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        mine: list[float] = []
        good = bad = 0
        start.wait()
        while True:
            try:
                code, member = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            r = http.post(base + "/member-codes/resolve", data=f'{{"code": "{code}"}}', headers=headers, timeout=30)
            mine.append(time.perf_counter() - t0)
            if r.status_code == 200 and r.json().get("member_id") == member:
                good += 1
            else:
                bad += 1
        with lock:
            ok[0] += good
            errors[0] += bad
            latencies.extend(mine)

    threads = [threading.Thread(target=till) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return Cell(kind, clients, ok[0], errors[0], time.perf_counter() - t0, latencies)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.member_codes", description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--codes", type=int, default=1500, help="codes resolved per cell")
    a = ap.parse_args(argv)
    config.use(config.Settings(identity_secret=SECRET))
    from tests.support.servers import free_port

    cells: list[Cell] = []
    for kind in ("sqlite", "postgresql") if a.backend == "both" else (a.backend,):
        with database(kind) as url:
            key = db.run(apikeys.create_api_client, "pos")
            port = free_port()
            api = start_api(url, port)
            try:
                base = f"http://127.0.0.1:{port}/api/v1"
                run_cell(kind, base, key, 4, show_codes(200, "W"))  # warm-up: pools, caches
                for n, clients in enumerate(CLIENTS):
                    cells.append(run_cell(kind, base, key, clients, show_codes(a.codes, f"C{n}")))
            finally:
                api.terminate()
                api.wait(10)
    print(f"\nMember codes resolved at POST /api/v1/member-codes/resolve (one API worker; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")
    print(f"{'backend':<11}{'tills':>6}{'codes/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'ok':>7}{'errors':>8}")
    for c in cells:
        print(f"{c.backend:<11}{c.clients:>6}{c.rate:>10.0f}{c.pct(0.5):>9.1f}{c.pct(0.95):>9.1f}"
              f"{c.ok:>7}{c.errors:>8}")
    print(f"\nmedian latency over all cells: {statistics.median(x for c in cells for x in c.latencies) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
