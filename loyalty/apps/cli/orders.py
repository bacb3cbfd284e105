"""Importing orders from a CSV file exported by a till or the web shop (idempotent)."""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loyalty import db
from loyalty.apps.cli.common import EXIT_OK, EXIT_REFUSED, UsageError, command_group, parse_source, progress_bar
from loyalty.common import ascii_digits
from loyalty.errors import LoyaltyError
from loyalty.members import service as members
from loyalty.orders import service as orders

ORDER_FIELDS = ("placed_at", "amount", "member_id", "phone", "store_code", "channel")


REQUIRED_COLUMNS = ("external_id", "placed_at", "store_code", "channel", "sku", "qty", "unit_price", "amount")


KNOWN_COLUMNS = REQUIRED_COLUMNS + ("member_id", "phone")


@dataclass
class _CsvOrder:
    """One order's rows of an import file, and what is wrong with them."""

    external_id: str
    head: dict[str, str]  # the order's own fields, as its first row gives them
    lines: list[dict[str, Any]] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def where(self) -> str:
        """The order's place in the file, for messages: "line 4", "lines 4-6" or "lines 4,9"."""
        nums = self.line_numbers
        if len(nums) == 1:
            return f"line {nums[0]}"
        if nums == list(range(nums[0], nums[-1] + 1)):
            return f"lines {nums[0]}-{nums[-1]}"
        return "lines " + ",".join(map(str, nums))

    def payload(self) -> dict[str, Any]:
        h = self.head
        p: dict[str, Any] = {"external_id": self.external_id, "placed_at": h["placed_at"], "amount": h["amount"],
                             "lines": self.lines}
        if h.get("channel"):
            p["channel"] = h["channel"]
        if h.get("store_code"):
            p["store_code"] = h["store_code"]
        if h.get("member_id"):
            p["member_id"] = int(h["member_id"])
        if h.get("phone"):
            p["phone"] = h["phone"]
        return p


def _read_orders(path: Path) -> tuple[list[_CsvOrder], list[str]]:
    """Group the file's rows into orders; returns the orders and problems of rows that fit no order."""
    try:
        fh = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        try:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if "member_id" not in header and "phone" not in header:
                missing.append("member_id or phone")
            unknown = [c for c in header if c not in KNOWN_COLUMNS]
            if not header:
                raise UsageError(f"{path} is empty: the first line must name the columns")
            if missing or unknown:
                parts = ([f"missing columns: {', '.join(missing)}"] if missing else []) + (
                    [f"unknown columns: {', '.join(unknown)}"] if unknown else [])
                raise UsageError(f"{path}: {'; '.join(parts)} (columns: {', '.join(KNOWN_COLUMNS)})")
            by_id: dict[str, _CsvOrder] = {}
            loose: list[str] = []
            for row in reader:
                _add_row(by_id, loose, row, reader.line_num)
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not UTF-8 text") from None
        except csv.Error as exc:
            raise UsageError(f"{path}: malformed CSV near line {reader.line_num}: {exc}") from None
    return list(by_id.values()), loose


def _add_row(by_id: dict[str, _CsvOrder], loose: list[str], row: dict[str | None, Any], n: int) -> None:
    if None in row:
        loose.append(f"line {n}: more cells than columns")
        return
    cell = {k: (v or "").strip() for k, v in row.items() if k is not None}
    if not any(cell.values()):
        return  # a blank line
    ext = cell.get("external_id", "")
    if not ext:
        loose.append(f"line {n}: external_id is empty")
        return
    head = {k: cell.get(k, "") for k in ORDER_FIELDS}
    order = by_id.setdefault(ext, _CsvOrder(ext, head))
    order.line_numbers.append(n)
    for k in ORDER_FIELDS:
        if head[k] != order.head[k]:
            # Never a phone number in full on the terminal (or in a log of it).
            show = members.mask_phone if k == "phone" else repr
            order.problems.append(f"line {n}: {k} {show(head[k])} differs from line {order.line_numbers[0]} "
                                  f"({show(order.head[k])}); every line of an order repeats the order's fields")
    if head["member_id"] and not (ascii_digits(head["member_id"]) and len(head["member_id"]) <= 18):
        order.problems.append(f"line {n}: member_id {head['member_id']!r} is not a member number")
    sku, qty, price = cell.get("sku", ""), cell.get("qty", ""), cell.get("unit_price", "")
    if not (sku or qty or price):
        return  # an order row without an item line (only its total)
    if not (sku and qty and price):
        order.problems.append(f"line {n}: sku, qty and unit_price go together")
    elif not ascii_digits(qty) or int(qty) < 1:
        order.problems.append(f"line {n}: qty {qty!r} is not a whole number above 0")
    else:
        order.lines.append({"sku": sku, "qty": int(qty), "unit_price": price})


def cmd_orders_import(a: argparse.Namespace) -> int:
    batch, loose = _read_orders(a.file)
    created = replayed = earned = 0
    rejected: list[str] = list(loose)
    for msg in loose:
        print(f"rejected: {msg}", file=sys.stderr)
    with progress_bar(len(batch), "importing", "order") as bar:
        for o in batch:
            bar.update()
            if o.problems:
                for p in o.problems:
                    print(f"rejected order {o.external_id}: {p}", file=sys.stderr)
                rejected.append(o.external_id)
                continue
            try:
                # One order, one transaction: a bad order never takes good ones down with it.
                res = db.run(orders.record_order, a.source, o.payload())
            except LoyaltyError as exc:
                if exc.code == "unavailable":
                    raise
                print(f"rejected order {o.external_id} ({o.where()}): {exc.code}: {exc.message}", file=sys.stderr)
                rejected.append(o.external_id)
                continue
            if res["replayed"]:
                replayed += 1
            else:
                created += 1
                earned += res["points_earned"]
    print(f"{a.file}: {created} orders created, {replayed} replayed (already imported), "
          f"{len(rejected)} rejected; {earned} points earned")
    return EXIT_REFUSED if rejected else EXIT_OK


def add_orders(sub: Any) -> None:
    og = command_group(sub, "orders", "orders from tills and the web shop")
    im = og.add_parser("import", help="import orders from a CSV file (idempotent)",
                       description="Columns: " + ", ".join(REQUIRED_COLUMNS) + ", and member_id or phone. "
                       "One row per item; rows with the same external_id form one order and repeat its fields. "
                       "Exit code 1 if any order was rejected (each is reported on stderr).")
    im.add_argument("file", type=Path)
    im.add_argument("--source", required=True, type=parse_source, help="the system the orders come from, e.g. pos")
    im.set_defaults(func=cmd_orders_import)
