"""Operations per second of the loyalty core on SQLite and PostgreSQL.

For each backend, on a freshly migrated database (SQLite file; a throwaway
PostgreSQL server), with 1 and with 16 concurrent clients (threads, each
calling :func:`loyalty.db.run` in a loop for ``--seconds``):

- earn from an order (``orders.record_order``: member lock, expiry, ledger, lot, tier);
- balance query (``points.summary``, read-only transaction);
- claim a coupon (``coupons.claim``: member lock, holding and stock guards);
- redeem a code (``coupons.redeem``: guarded ``active -> redeemed`` update).

Baselines measured in the same run: an empty transaction (``SELECT 1``) through
the same ``db.run`` is the floor, and each operation's 16-client figure is
compared with its 1-client figure. Last, the balance query's latency for a
member with 5,000 ledger entries against a member with 10.

    .venv/bin/python -m bench.core_ops [--backend sqlite|postgresql|both] [--seconds 3] [--out FILE]

Each client works on its own share of 64 members (no waiting for another
client's member lock); the claims all take stock from one campaign row, as in
a real promotion.

Figures are printed, never asserted. The machine is shared: the load average
is printed with the table.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from loyalty import config, db, migrate
from loyalty.catalogue.models import Product, Store
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon
from loyalty.db import utcnow
from loyalty.members.models import Member
from loyalty.orders import service as orders
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot
from loyalty.points.service import expiry_for

CLIENTS = (1, 16)
MEMBERS = 64  # members the clients share out, so that 16 clients rarely wait for one member's lock
BIG_LEDGER = 5_000
SMALL_LEDGER = 10
CAMPAIGN = "BENCH-FREE"
STORE = "B001"


@dataclass
class Cell:
    """One measured cell: an operation at a number of clients."""

    backend: str
    op: str
    clients: int
    ops: int
    errors: int
    seconds: float
    latencies: list[float]
    statements: float  # SQL statements per operation (one client, counted apart)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


# ---------------------------------------------------------------------------- fixtures


@contextmanager
def backend(kind: str) -> Iterator[Engine]:
    """A migrated empty database on ``kind``, configured for :func:`db.run`; removed afterwards."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-core-")
        e = db.make_engine(f"sqlite:///{folder}/bench.db")
        migrate.upgrade(e)
        db.configure(e)
        try:
            yield e
        finally:
            e.dispose()
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)
        return
    from tests.support.servers import start_postgres  # the tests' throwaway server

    server = start_postgres()
    try:
        admin = db.make_engine(server.base_url + "/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE bench"))
        admin.dispose()
        e = db.make_engine(server.base_url + "/bench", pool_size=20, max_overflow=20)
        migrate.upgrade(e)
        db.configure(e)
        try:
            yield e
        finally:
            e.dispose()
    finally:
        server.stop()


def _seed(s: Session, now: datetime) -> list[int]:
    """A store, a few products, a free public campaign and plain members; returns member ids."""
    s.add(Store(code=STORE, name_zh="基准店", name_en="Bench store", city="上海", active=True))
    s.add_all(Product(sku=f"BENCH{i:03d}", name_zh=f"商品{i}", name_en=f"item {i}", category="snacks",
                      price_fen=1990 + i, stock=100, active=True) for i in range(20))
    coupons.create_campaign(s, code=CAMPAIGN, name_zh="满100减20", name_en="20 off 100", kind="threshold",
                            threshold_fen=10000, discount_fen=2000, valid_days=30, per_member_limit=0)
    rows = [Member(phone=f"1390000{i:04d}", referral_code=f"BENCH{i:05d}", tier="normal", points_balance=0,
                   consent_version="bench", consent_at=now, marketing_opt_in=True, status="active",
                   created_at=now - timedelta(days=400)) for i in range(MEMBERS + 2)]
    s.add_all(rows)
    s.flush()
    return [m.id for m in rows]


def _coupon_pool(s: Session, member_ids: list[int], n: int, now: datetime, tag: str) -> list[str]:
    """``n`` active coupons of the bench campaign, inserted in bulk (setup for the redeem cells)."""
    cid = coupons.campaign_by_code(s, CAMPAIGN).id
    codes = [f"{tag}{i:08d}" for i in range(n)]
    s.execute(insert(Coupon), [
        dict(code=c, campaign_id=cid, member_id=member_ids[i % len(member_ids)], request_key=f"pool:{c}",
             status="active", claimed_at=now, valid_from=now - timedelta(hours=1),
             valid_until=now + timedelta(days=30), points_spent=0)
        for i, c in enumerate(codes)
    ])
    return codes


def _big_ledger(s: Session, member_id: int, n: int, now: datetime) -> None:
    """Give one member ``n`` ledger entries: an earning every few hours for two years, and the
    expiries of the year-old lots, keeping balance = ledger = lots."""
    step = timedelta(hours=3, minutes=30)
    entries: list[tuple[datetime, int, datetime]] = []  # (earned at, points, expires at), newest first
    due = 0
    while len(entries) + due < n:
        at = now - step * (len(entries) + 1)
        exp = expiry_for(at)
        due += exp <= now
        entries.append((at, 10 + len(entries) % 7, exp))
    entries.reverse()
    # The oldest due lots expire; at most one due lot is left for the nightly job, as in life.
    expired = [i for i, (_, _, exp) in enumerate(entries) if exp <= now][: n - len(entries)]
    events: list[tuple[datetime, int, str, int]] = [(at, 0, "earn", i) for i, (at, _, _) in enumerate(entries)]
    events += [(entries[i][2], 1, "expire", i) for i in expired]
    events.sort(key=lambda x: (x[0], x[1]))
    balance = 0
    lots: dict[int, PointsLot] = {}
    for at, _, kind, i in events:
        pts = entries[i][1]
        if kind == "earn":
            balance += pts
            e = LedgerEntry(member_id=member_id, kind="earn", delta=pts, balance_after=balance, growth=pts,
                            created_at=at, reason="bench")
            s.add(e)
            s.flush()
            lots[i] = PointsLot(member_id=member_id, entry_id=e.id, amount=pts, remaining=pts, earned_at=at,
                                expires_at=entries[i][2])
            s.add(lots[i])
        else:
            balance -= pts
            lots[i].remaining = 0
            s.add(LedgerEntry(member_id=member_id, kind="expire", delta=-pts, balance_after=balance,
                              created_at=at, reason="bench"))
    s.flush()
    m = s.get(Member, member_id)
    assert m is not None
    m.points_balance = balance


# ---------------------------------------------------------------------------- measuring


def _count_statements(engine: Engine, fn: Callable[[], Any], repeat: int = 5) -> float:
    """SQL statements one call of ``fn`` sends (SQLite's BEGIN IMMEDIATE counts, COMMIT does not), averaged."""
    n = 0

    def on_exec(*_a: Any) -> None:
        nonlocal n
        n += 1

    event.listen(engine, "before_cursor_execute", on_exec)
    try:
        for _ in range(repeat):
            fn()
    finally:
        event.remove(engine, "before_cursor_execute", on_exec)
    return n / repeat


def _run_cell(clients: int, seconds: float, make_op: Callable[[int], Callable[[], Any]]
              ) -> tuple[int, int, float, list[float]]:
    """Run ``clients`` threads for ``seconds``; each calls its own op in a loop. Returns
    (ops, errors, elapsed, latencies). A client whose op raises StopIteration stops early."""
    ops_fns = [make_op(k) for k in range(clients)]
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients
    errs = [0] * clients
    lats: list[list[float]] = [[] for _ in range(clients)]
    deadline = [0.0]

    def client(k: int) -> None:
        op = ops_fns[k]
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            t = time.perf_counter()
            try:
                op()
            except StopIteration:
                return
            except Exception:  # counted, never hidden: the table shows errors per cell
                errs[k] += 1
                continue
            lats[k].append(time.perf_counter() - t)
            counts[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(counts), sum(errs), elapsed, [x for xs in lats for x in xs]


def measure(kind: str, seconds: float) -> tuple[list[Cell], dict[str, list[float]]]:
    """Every cell of one backend, plus the balance latencies (small and 5,000-entry ledgers)."""
    now = utcnow()
    cells: list[Cell] = []
    with backend(kind) as engine:
        ids = db.run(_seed, now)
        members, big, small = ids[:MEMBERS], ids[MEMBERS], ids[MEMBERS + 1]
        db.run(_big_ledger, big, BIG_LEDGER, now)
        seq = itertools.count()
        pools: dict[str, list[str]] = {}

        def floor(readonly: bool) -> Callable[[int], Callable[[], Any]]:
            def make(_k: int) -> Callable[[], Any]:
                return lambda: db.run(lambda s: s.execute(text("SELECT 1")).scalar_one(), readonly=readonly)
            return make

        def earn(clients: int) -> Callable[[int], Callable[[], Any]]:
            def make(k: int) -> Callable[[], Any]:
                mine = itertools.cycle(members[k::clients])

                def op() -> Any:
                    at = utcnow()
                    n = next(seq)
                    payload = {
                        "external_id": f"E{n:09d}", "placed_at": at.isoformat(), "amount": "128.50",
                        "member_id": next(mine), "store_code": STORE, "channel": "pos",
                        "lines": [{"sku": f"BENCH{n % 20:03d}", "qty": 2, "unit_price": "40.00"},
                                  {"sku": f"BENCH{(n + 7) % 20:03d}", "qty": 1, "unit_price": "48.50"}],
                    }
                    return db.run(orders.record_order, "pos", payload, now=at)
                return op
            return make

        def balance(clients: int) -> Callable[[int], Callable[[], Any]]:
            def make(k: int) -> Callable[[], Any]:
                mine = itertools.cycle(members[k::clients])
                return lambda: db.run(points.summary, next(mine), readonly=True)
            return make

        def claim(clients: int) -> Callable[[int], Callable[[], Any]]:
            def make(k: int) -> Callable[[], Any]:
                mine = itertools.cycle(members[k::clients])
                return lambda: db.run(coupons.claim, next(mine), CAMPAIGN, key=f"C{next(seq):09d}")
            return make

        def redeem(clients: int) -> Callable[[int], Callable[[], Any]]:
            def make(k: int) -> Callable[[], Any]:
                codes = iter(pools[f"{clients}:{k}"])

                def op() -> Any:
                    code = next(codes)  # StopIteration ends this client: its pool is used up
                    return db.run(coupons.redeem, code, order_ref=f"R-{code}", order_amount_fen=15000,
                                  store_code=STORE)
                return op
            return make

        def redeem_one(spare: Iterator[str]) -> Callable[[], Any]:
            return lambda: db.run(coupons.redeem, next(spare), order_ref=f"X-{next(seq)}",
                                  order_amount_fen=15000, store_code=STORE)

        table: list[tuple[str, Callable[[int], Callable[[int], Callable[[], Any]]]]] = [
            ("floor: SELECT 1 (write txn)", lambda _c: floor(False)),
            ("floor: SELECT 1 (read txn)", lambda _c: floor(True)),
            ("earn from an order", earn),
            ("balance query", balance),
            ("claim a coupon", claim),
            ("redeem a code", redeem),
        ]
        for name, factory in table:
            for clients in CLIENTS:
                if name.startswith("redeem"):
                    # Enough fresh codes for any rate this machine reaches, per client.
                    per = max(2000, int(4000 * seconds / clients))
                    tag = f"P{clients:02d}"
                    codes = db.run(_coupon_pool, members, per * clients + 10, now, tag)
                    for k in range(clients):
                        pools[f"{clients}:{k}"] = codes[k * per:(k + 1) * per]
                    sql = _count_statements(engine, redeem_one(iter(codes[per * clients:])))
                else:
                    one = factory(1)(0)
                    one()  # warm the statement caches before counting
                    sql = _count_statements(engine, one)
                ops, errors, elapsed, lat = _run_cell(clients, seconds, factory(clients))
                cells.append(Cell(kind, name, clients, ops, errors, elapsed, lat, sql))
                print(f"  {kind:10} {name:30} {clients:2} clients: {ops / elapsed:8.0f} ops/s", flush=True)

        for i in range(SMALL_LEDGER):  # an ordinary member: a few purchases, each one entry
            at = utcnow()
            db.run(orders.record_order, "pos", {"external_id": f"S{i:04d}", "placed_at": at.isoformat(),
                                                "amount": "88.00", "member_id": small}, now=at)
        lat: dict[str, list[float]] = {}
        for label, mid in ((f"{SMALL_LEDGER} entries", small), (f"{BIG_LEDGER:,} entries", big)):
            db.run(points.summary, mid, readonly=True)
            xs = []
            stop = time.perf_counter() + min(seconds, 3.0)
            while time.perf_counter() < stop or len(xs) < 50:
                t = time.perf_counter()
                db.run(points.summary, mid, readonly=True)
                xs.append(time.perf_counter() - t)
            lat[label] = xs
    return cells, lat


# ---------------------------------------------------------------------------- report


def report(cells: list[Cell], lat: dict[str, dict[str, list[float]]], seconds: float) -> str:
    """The table: ops/s, latency, SQL per op, and ratios to the floor and to one client."""
    out = []
    load = os.getloadavg()
    out.append(f"core operations, {seconds:g} s per cell, {os.cpu_count()} cores, "
               f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (the machine is shared)")
    out.append("")
    head = (f"{'backend':10} {'operation':30} {'clients':>7} {'ops/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'SQL/op':>6} {'floor/op':>8} {'vs 1 client':>11} {'errors':>6}")
    out.append(head)
    out.append("-" * len(head))
    by = {(c.backend, c.op, c.clients): c for c in cells}
    for c in cells:
        floor_name = "floor: SELECT 1 (read txn)" if c.op == "balance query" else "floor: SELECT 1 (write txn)"
        floor = by.get((c.backend, floor_name, c.clients))
        vs_floor = (f"{floor.rate / c.rate:8.1f}" if floor and c.rate and not c.op.startswith("floor")
                    else f"{'':8}")
        one = by.get((c.backend, c.op, 1))
        vs_one = f"{c.rate / one.rate:10.2f}x" if one and c.clients != 1 and one.rate else f"{'':11}"
        out.append(f"{c.backend:10} {c.op:30} {c.clients:7} {c.rate:8.0f} {c.pct(0.5):7.2f} {c.pct(0.95):7.2f} "
                   f"{c.statements:6.1f} {vs_floor} {vs_one} {c.errors:6}")
    out.append("")
    out.append("SQL/op: statements sent per operation (SQLite's BEGIN IMMEDIATE/DEFERRED counts; PostgreSQL's "
               "BEGIN is implicit and the pool's pre-ping is not counted).")
    out.append("floor/op: how many empty transactions (SELECT 1 through db.run, same mode, same clients) "
               "fit in the time of one operation.")
    out.append("vs 1 client: throughput with 16 clients over throughput with 1. SQLite has one writer at a time; "
               "all clients are threads of one Python process (one GIL).")
    out.append("")
    out.append("balance query (points.summary), one client, by the member's ledger size:")
    head2 = f"{'backend':10} {'ledger':16} {'calls':>6} {'p50 ms':>7} {'p95 ms':>7} {'vs small':>8}"
    out.append(head2)
    out.append("-" * len(head2))
    for kind, by_label in lat.items():
        base = None
        for label, xs in by_label.items():
            xs = sorted(xs)
            p50 = statistics.median(xs) * 1000
            p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))] * 1000
            base = base or p50
            out.append(f"{kind:10} {label:16} {len(xs):6} {p50:7.2f} {p95:7.2f} {p50 / base:7.1f}x")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per cell (default 3)")
    ap.add_argument("--out", help="also write the table to this file")
    a = ap.parse_args(argv)
    config.use(config.Settings())
    kinds = ("sqlite", "postgresql") if a.backend == "both" else (a.backend,)
    cells: list[Cell] = []
    lat: dict[str, dict[str, list[float]]] = {}
    t0 = time.perf_counter()
    for kind in kinds:
        kind_cells, kind_lat = measure(kind, a.seconds)
        cells += kind_cells
        lat[kind] = kind_lat
    text_out = report(cells, lat, a.seconds) + f"\n\nwhole run: {time.perf_counter() - t0:.0f} s"
    print()
    print(text_out)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text_out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
