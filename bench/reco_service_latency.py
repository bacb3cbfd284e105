"""Serving latency of loyalty.recommender.service.recommend on a demo database.

Run by hand; prints figures. Seeds a throw-away SQLite database with the demo
generator (or uses --database), trains, then times one recommend() call per
member against the catalogue's plain best-seller query in the same run:

    .venv/bin/python bench/reco_service_latency.py --members 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import func, select  # noqa: E402

from loyalty import db, migrate  # noqa: E402
from loyalty.catalogue.models import Product  # noqa: E402
from loyalty.members.models import Member  # noqa: E402
from loyalty.recommender import service  # noqa: E402


def _timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", help="an existing, seeded database URL (default: seed a temporary one)")
    p.add_argument("--members", type=int, default=2000, help="demo members to seed")
    p.add_argument("--requests", type=int, default=1000, help="recommend() calls to time")
    a = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="reco-bench-")
    url = a.database or f"sqlite:///{work}/loyalty.db"
    engine = db.make_engine(url)
    db.configure(engine)
    if a.database is None:
        from loyalty.apps import demo

        migrate.upgrade(engine)
        t0 = time.perf_counter()
        demo.seed_demo(a.members)
        print(f"seeded {a.members} demo members in {time.perf_counter() - t0:.0f} s")
    with db.session(readonly=True) as s:
        ids = list(s.execute(select(Member.id).where(Member.status == "active").order_by(Member.id)).scalars())
        products = s.execute(select(func.count(Product.id))).scalar_one()
    models = os.path.join(work, "models")
    r = db.run(service.train_and_save, models, progress=False)
    print(f"members {len(ids)}, products {products}, order lines {r.lines}, trained in {r.seconds:.1f} s")
    calls = [ids[n % len(ids)] for n in range(a.requests)]
    db.run(service.recommend, calls[0], 5, directory=models)  # load the model once, as a server would
    it = iter(calls)
    ours = _timed(lambda: db.run(service.recommend, next(it), 5, directory=models), len(calls))
    base = _timed(lambda: db.run(service.best_sellers, 5), len(calls))
    print(f"{'call':<34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, v in (("service.recommend (k=5)", ours), ("service.best_sellers (k=5)", base)):
        print(f"{name:<34} {_pct(v, 50):>8.2f} {_pct(v, 95):>8.2f}")
    print(f"ratio recommend / best_sellers at p50: x{_pct(ours, 50) / _pct(base, 50):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
