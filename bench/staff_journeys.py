"""How fast the staff app's journeys tab answers at a chain's size (PostgreSQL): live, then from frozen outcomes.

Seeds an empty throwaway PostgreSQL with :mod:`bench.bulk` (members, about
``--orders`` orders each over a year and more, points, coupons, welcome and
after-purchase sends and a broadcast with a 10 % holdout, ``--conversations``
conversations over the last 30 days), then times the journeys tab and the bot
figures twice in the same process:

1. live: before any freeze, every member's orders inside their attribution
   window are summed at each request (what the tab did before outcomes were
   frozen);
2. frozen: after :func:`loyalty.outreach.outcomes.freeze_outcomes` (timed
   once from nothing, then once more as each planning round runs it), the
   closed windows are summed from their rows and only the open ones live.

It checks that both give the same figures and prints the ratio of the tab's
p50 and p95, live over frozen::

    nice .venv/bin/python -m bench.staff_journeys --members 10000 --orders 20

Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench import bulk
from bench.core_ops import backend
from bench.staff_dashboard import _p, freeze, report, views
from loyalty import db
from loyalty.reports import outreach as journeys

TAB = "journeys tab (all journeys + broadcasts)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.staff_journeys", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", type=int, default=20000)
    p.add_argument("--orders", type=int, default=15)
    p.add_argument("--conversations", type=int, default=100000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    with backend("postgresql"):
        t0 = time.perf_counter()
        counts = bulk.seed(a.members, a.orders, a.conversations)
        print(f"seeded in {time.perf_counter() - t0:.0f} s (PostgreSQL): "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
        named = {k: v for k, v in views(bulk.NOW, None).items() if not k.startswith(("dashboard", "CSV"))}
        print("\nlive (no outcome frozen yet):")
        live = report(named, a.repeat)
        rows_live = db.run(journeys.journey_rows, readonly=True)
        print()
        freeze(bulk.NOW)
        print("\nfrozen (closed windows from their rows, open ones live):")
        frozen = report(named, a.repeat)
        same = db.run(journeys.journey_rows, readonly=True) == rows_live
        print(f"\nsame figures live and frozen: {'yes' if same else 'NO'}")
        lt, ft = live[TAB], frozen[TAB]
        print(f"journeys tab, live / frozen: p50 {statistics.median(lt) / statistics.median(ft):.1f}x, "
              f"p95 {_p(lt, 95) / _p(ft, 95):.1f}x")


if __name__ == "__main__":
    main()
