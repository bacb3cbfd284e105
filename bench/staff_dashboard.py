"""How fast the staff dashboard's views answer on a chain's worth of demo data (PostgreSQL).

Seeds an empty throwaway PostgreSQL database with the demo generator
(``loyalty/apps/demo``: stores, catalogue, members and their orders through
the core's services), then times each dashboard view the page asks for:
every figure for the last 30 days, the last 365 days, one store, one
channel, and one CSV. The baseline, measured in the same process, is a bare
``count(*)`` of the orders table: each view is printed as a ratio to it.

    .venv/bin/python -m bench.staff_dashboard --members 100000 --days 450   # the issue's size (hours to seed)
    .venv/bin/python -m bench.staff_dashboard --members 3000                # what fits a shared machine

The goal is p95 < 1 s per view. Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, text

from bench.core_ops import backend
from bot.staff.app import table_rows
from loyalty import db
from loyalty.apps.demo import seed_demo
from loyalty.catalogue.models import Store
from loyalty.orders.models import Order
from loyalty.reports import service as reports


def _times(fn: Callable[[], Any], repeat: int) -> list[float]:
    fn()  # warm the caches once, as a page that was opened before
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.staff_dashboard", description=__doc__)
    p.add_argument("--members", type=int, default=3000)
    p.add_argument("--days", type=int, default=450)
    p.add_argument("--repeat", type=int, default=20)
    a = p.parse_args(argv)
    with backend("postgresql") as engine:
        t0 = time.perf_counter()
        report = seed_demo(a.members, days=a.days)
        seeded = time.perf_counter() - t0
        with engine.connect() as c:
            c.execute(text("ANALYZE"))
        n_orders = db.run(lambda s: s.execute(select(func.count()).select_from(Order)).scalar(), readonly=True)
        last = db.run(lambda s: s.execute(select(func.max(Order.placed_at))).scalar(), readonly=True)
        store_id = db.run(lambda s: s.execute(select(Store.id).order_by(Store.id)).scalar(), readonly=True)
        now = (last or datetime.now(timezone.utc)) + timedelta(hours=1)
        print(f"seeded {report.members} members, {n_orders} orders in {seeded:.0f} s (PostgreSQL)")

        def view(days: int, **kw: Any) -> Callable[[], Any]:
            sc = reports.Scope(now - timedelta(days=days), now, **kw)
            return lambda: db.run(reports.dashboard, sc, now, readonly=True)

        def one_csv() -> Any:
            data = db.run(reports.dashboard, reports.Scope(now - timedelta(days=30), now), now, readonly=True)
            return table_rows("new_members", data)

        floor = _times(lambda: db.run(lambda s: s.execute(select(func.count()).select_from(Order)).scalar(),
                                      readonly=True), a.repeat)
        base = statistics.median(floor)
        print(f"baseline count(*) of orders: p50 {base * 1000:.1f} ms")
        print(f"{'view':<34}{'p50 ms':>9}{'p95 ms':>9}{'× baseline':>12}")
        for name, fn in (("all stores, last 30 days", view(30)), ("all stores, last 365 days", view(365)),
                         ("one store, last 30 days", view(30, store_id=store_id)),
                         ("channel wechat, last 30 days", view(30, channel="wechat")),
                         ("CSV new members, 30 days", one_csv)):
            t = _times(fn, a.repeat)
            print(f"{name:<34}{statistics.median(t) * 1000:>9.1f}{_p(t, 95) * 1000:>9.1f}"
                  f"{statistics.median(t) / base:>12.1f}")


if __name__ == "__main__":
    main()
