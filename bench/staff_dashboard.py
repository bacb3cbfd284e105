"""How fast the staff app's views answer at a chain's size (PostgreSQL): dashboard, journeys tab, bot figures.

Seeds an empty throwaway PostgreSQL database, then times each view the pages
ask for: every dashboard figure for the last 30 days, the last 365 days, one
store, one channel, one CSV; the journeys tab (one holdout report per journey
and broadcast); the conversations and bot figures for 30 days.

The pre-aggregated tables (loyalty/reports/rollup.py) are rebuilt first, as
the scheduler would, and that rebuild is timed. Each view runs once to warm
up, then ``--repeat`` times; p50, p95 and max are printed, with two baselines:
a bare ``count(*)`` of the orders, and the 365-day dashboard computed wholly
live (no tables); and the load average (the machine may be shared: run it
with ``nice``).

Two ways to seed:

- ``--bulk``: :mod:`bench.bulk` writes members, orders, points, coupons,
  segments, outreach sends, conversations and handoffs with COPY, about
  ``--orders`` orders a member (the issue's size, 100,000 members and
  2,000,000 orders, in about 20 to 30 minutes on this shared machine; then the journeys' outcomes are
  frozen, as the outreach scheduler does, and that is timed too)::

    nice .venv/bin/python -m bench.staff_dashboard --bulk --members 100000 --orders 20 --conversations 100000

  ``--keep`` stops after seeding and keeps the server (its URL printed) until Ctrl-C;
  ``--url URL`` then times the views of the current code on it without seeding again
  (it writes only the rebuilt report tables).

- without it, the demo generator (``loyalty/apps/demo``) through the core's
  services, ``--members`` over ``--days`` days (about 56 orders a second:
  hours for more than a few thousand members)::

    nice .venv/bin/python -m bench.staff_dashboard --members 2500

The goal is p95 < 1 s per view. Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, text

from bench import bulk
from bench.core_ops import backend
from bot.staff.app import table_rows
from loyalty import db, migrate
from loyalty.apps.demo import seed_demo
from loyalty.catalogue.models import Store
from loyalty.config import SHANGHAI
from loyalty.orders.models import Order
from loyalty.outreach import outcomes
from loyalty.reports import outreach as journeys
from loyalty.reports import rollup
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


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def days_scope(now: datetime, days: int, **kw: Any) -> reports.Scope:
    """The last ``days`` business days up to ``now``'s, as the staff app asks (Asia/Shanghai midnights)."""
    today = now.astimezone(SHANGHAI).date()
    return reports.Scope.days(today - timedelta(days=days - 1), today, **kw)


def views(now: datetime, store_id: int | None) -> dict[str, Callable[[], Any]]:
    """What the staff pages ask for, by name: each a call of the core as the web app makes it."""
    def dash(days: int, **kw: Any) -> Callable[[], Any]:
        sc = days_scope(now, days, **kw)
        return lambda: db.run(reports.dashboard, sc, now, readonly=True)

    def one_csv() -> Any:
        data = db.run(reports.dashboard, days_scope(now, 30), now, readonly=True)
        return table_rows("new_members", data)

    month = days_scope(now, 30)
    live = days_scope(now, 365)
    return {"baseline: dashboard, all stores, 365 days, every figure live":
            lambda: db.run(reports.dashboard, live, now, tables=False, readonly=True),
            "dashboard, all stores, 30 days": dash(30), "dashboard, all stores, 365 days": dash(365),
            "dashboard, one store, 30 days": dash(30, store_id=store_id),
            "dashboard, channel wechat, 30 days": dash(30, channel="wechat"),
            "CSV new members, 30 days": one_csv,
            "journeys tab (all journeys + broadcasts)": lambda: db.run(journeys.journey_rows, readonly=True),
            "conversations figure, 30 days": lambda: db.run(reports.conversations, month, readonly=True),
            "bot figure, 30 days": lambda: db.run(reports.bot, month, readonly=True)}


def report(named: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Time each view and print a Markdown table: p50, p95, max (ms) and the load average after it."""
    print("| view | p50 ms | p95 ms | max ms | load after |\n| --- | --- | --- | --- | --- |")
    out = {}
    for name, fn in named.items():
        t = out[name] = _times(fn, repeat)
        print(f"| {name} | {statistics.median(t) * 1000:,.0f} | {_p(t, 95) * 1000:,.0f} | {max(t) * 1000:,.0f} "
              f"| {_load()} |", flush=True)
    return out


def freeze(now: datetime) -> None:
    """Freeze the journeys' outcomes as the outreach scheduler would (once from nothing, then once more: the
    incremental run of every planning round), printing how long each took."""
    for what in ("first freeze (every closed window)", "next freeze (nothing new)"):
        t0 = time.perf_counter()
        f = db.run(outcomes.freeze_outcomes, now)
        print(f"{what}: {(time.perf_counter() - t0) * 1000:,.0f} ms, {f.frozen:,} rows written; load {_load()}",
              flush=True)


def _time_all(a: argparse.Namespace, now: datetime) -> None:
    done = db.run(rollup.refresh, now)
    if done is not None:
        print(f"dashboard tables rebuilt (loyalty/reports/rollup.py): {done.rows:,} rows in {done.took_ms:,} ms; "
              f"load {_load()}", flush=True)
    store_id = db.run(lambda s: s.execute(select(Store.id).order_by(Store.id)).scalar(), readonly=True)
    floor = _times(lambda: db.run(lambda s: s.execute(select(func.count()).select_from(Order)).scalar(),
                                  readonly=True), a.repeat)
    print(f"baseline count(*) of orders: p50 {statistics.median(floor) * 1000:.1f} ms; load {_load()}")
    report(views(now, store_id), a.repeat)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.staff_dashboard", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=3000)
    p.add_argument("--days", type=int, default=450)
    p.add_argument("--bulk", action="store_true", help="seed with bench.bulk (COPY) instead of the demo generator")
    p.add_argument("--orders", type=int, default=20, help="--bulk: orders a member on average")
    p.add_argument("--conversations", type=int, default=100000, help="--bulk: conversations in the last 30 days")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--url", help="time the views on this database, seeded before (migrated to this code's "
                                 "schema; only the report tables and frozen outcomes are written)")
    p.add_argument("--keep", action="store_true", help="seed, print the database URL and keep the server until "
                                                       "Ctrl-C instead of timing (for --url runs of later code)")
    a = p.parse_args(argv)
    if a.url:
        db.configure(db.make_engine(a.url))
        migrate.upgrade(db.engine())
        last = db.run(lambda s: s.execute(select(func.max(Order.placed_at))).scalar(), readonly=True)
        now = bulk.NOW if a.bulk else (last or datetime.now(timezone.utc)) + timedelta(hours=1)
        freeze(now)  # nothing new when the seeding run froze them already
        _time_all(a, now)
        return
    with backend("postgresql") as engine:
        print(f"load average before seeding: {_load()}", flush=True)
        t0 = time.perf_counter()
        if a.bulk:
            counts = bulk.seed(a.members, a.orders, a.conversations, days=a.days)
            what = ", ".join(f"{n:,} {t}" for t, n in counts.items())
            now = bulk.NOW
        else:
            what = f"{seed_demo(a.members, days=a.days).members} members"
            with engine.connect() as c:
                c.execute(text("ANALYZE"))
            last = db.run(lambda s: s.execute(select(func.max(Order.placed_at))).scalar(), readonly=True)
            now = (last or datetime.now(timezone.utc)) + timedelta(hours=1)
        print(f"seeded in {time.perf_counter() - t0:.0f} s (PostgreSQL): {what}", flush=True)
        freeze(now)  # the outreach scheduler's job, as on a running system
        if a.keep:
            print(f"kept: --url {engine.url.render_as_string(hide_password=False)}; Ctrl-C removes it", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
        _time_all(a, now)


if __name__ == "__main__":
    main()
