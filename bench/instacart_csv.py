"""Instacart's order files as one transactions CSV the harness reads.

Run by hand. Instacart's Online Grocery Basket Analysis data has no dates:
``orders.csv`` numbers each customer's orders (``order_number``) and gives the
days since the one before (``days_since_prior_order``: blank for the first,
capped at 30) and the hour of day; the lines are in
``order_products__prior.csv`` and ``order_products__train.csv``. This joins
them and gives every order a time: a customer's days add up from their first
order, and every customer's latest order with lines falls on the same day
(``END_DAY``), at its hour. The time split's last 30 days then hold each customer's last month
of orders; the calendar is not the real one (nothing in the data says when a
customer started), so sales "in the last 30 days" mix customers' months.

    .venv/bin/python bench/instacart_csv.py /tmp/instacart.csv --orders orders.csv \\
        order_products__prior.csv order_products__train.csv
    .venv/bin/python bench/eval_recommender.py /tmp/instacart.csv --user-col user_id \\
        --item-col product_id --basket-col order_id --time-col time --time-format s \\
        --qty-col none --price-col none --cancel-prefix none --exclude-items none

An extract whose lines already carry their order's columns (``user_id``,
``order_number``, ``days_since_prior_order``, ``order_hour_of_day`` beside
``order_id`` and ``product_id``) needs no ``--orders``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.reco_data import DAY, _open_text  # noqa: E402  (the harness's day; .csv.gz read as text)

END_DAY = 17_287  # 2017-05-01, the month Instacart published the data: each customer's latest order with lines
ORDER_COLUMNS = ("order_id", "user_id", "order_number", "days_since_prior_order", "order_hour_of_day")
OUT_COLUMNS = ("user_id", "order_id", "product_id", "time")


@dataclass(frozen=True)
class _Order:
    user: str
    number: int
    gap_days: float  # since the customer's order before (0 for the first)
    hour: int


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with _open_text(str(path)) as f:
        yield from csv.DictReader(f)


def _columns(path: Path) -> list[str]:
    with _open_text(str(path)) as f:
        return next(csv.reader(f), [])


def _order(row: dict[str, str]) -> _Order:
    gap = row["days_since_prior_order"].strip()
    return _Order(row["user_id"], int(float(row["order_number"])), float(gap) if gap else 0.0,
                  int(float(row["order_hour_of_day"])))


def read_orders(rows: Iterable[dict[str, str]]) -> dict[str, _Order]:
    """order_id -> the order's customer, number, days since the one before and hour."""
    return {row["order_id"]: _order(row) for row in rows}


def order_times(orders: dict[str, _Order], with_lines: set[str]) -> dict[str, int]:
    """order_id -> Unix seconds: each customer's days added up in order of their numbers (every
    order's gap counts), the latest order with lines on END_DAY, each order at its hour."""
    by_user: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for order_id, o in orders.items():
        by_user[o.user].append((o.number, order_id))
    times = {}
    for numbered in by_user.values():
        numbered.sort()
        day, days = 0.0, {}
        for k, (_, order_id) in enumerate(numbered):
            day += orders[order_id].gap_days if k else 0.0
            days[order_id] = day
        kept = [d for order_id, d in days.items() if order_id in with_lines]
        if not kept:  # nothing of this customer's is written
            continue
        last = max(kept)  # Instacart's "test" orders have no lines: not the customer's latest here
        for order_id, d in days.items():
            times[order_id] = int(round((END_DAY - (last - d)) * DAY)) + orders[order_id].hour * 3600
    return times


def write(out: Path, line_files: list[Path], orders_file: Path | None) -> tuple[int, int]:
    """Write user_id, order_id, product_id, time for every line whose order is known; returns
    (lines written, lines skipped because their order was not in the orders)."""
    if orders_file is not None:
        orders = read_orders(_rows(orders_file))
        with_lines = {row["order_id"] for path in line_files for row in _rows(path)}
    else:  # an extract: every line carries its order's columns, so every order has lines
        orders = read_orders(row for path in line_files for row in _rows(path))
        with_lines = set(orders)
    times = order_times(orders, with_lines)
    written = skipped = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(OUT_COLUMNS)
        for path in line_files:
            for row in _rows(path):
                o = orders.get(row["order_id"])
                if o is None:
                    skipped += 1
                    continue
                w.writerow((o.user, row["order_id"], row["product_id"], times[row["order_id"]]))
                written += 1
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="CSV file to write")
    p.add_argument("lines", type=Path, nargs="+", help="order_products files (or an extract with the order columns)")
    p.add_argument("--orders", type=Path, help="orders.csv; none: the lines carry their order's columns")
    a = p.parse_args(argv)
    needed = ("order_id", "product_id") if a.orders else ORDER_COLUMNS + ("product_id",)
    for path in [*a.lines, *([a.orders] if a.orders else [])]:
        try:
            header = _columns(path)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        want = ORDER_COLUMNS if path == a.orders else needed
        missing = [c for c in want if c not in header]
        if missing:
            print(f"error: {path} has no column {', '.join(missing)}", file=sys.stderr)
            return 2
    try:
        written, skipped = write(a.out, a.lines, a.orders)
    except (KeyError, ValueError) as exc:  # a row without a field, a number that is not one
        print(f"error: unreadable row: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written} lines to {a.out}" + (f"; {skipped} lines of unknown orders skipped" if skipped else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
