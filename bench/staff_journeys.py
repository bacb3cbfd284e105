"""How fast the staff app's journeys tab and bot figures answer at a chain's size (PostgreSQL).

Seeds an empty throwaway PostgreSQL with :mod:`bench.bulk` (members, about
``--orders`` orders each over a year and more, points, coupons, welcome and
after-purchase sends and a broadcast with a 10 % holdout, ``--conversations``
conversations over the last 30 days), then times only what the journeys tab
and the bot figures ask for (``bench.staff_dashboard`` times every view):

    nice .venv/bin/python -m bench.staff_journeys --members 20000 --orders 15

Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import time

from bench import bulk
from bench.core_ops import backend
from bench.staff_dashboard import report, views


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.staff_journeys", description=__doc__)
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
        named = views(bulk.NOW, None)
        report({k: v for k, v in named.items() if not k.startswith(("dashboard", "CSV"))}, a.repeat)


if __name__ == "__main__":
    main()
