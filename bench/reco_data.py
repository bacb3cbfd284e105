"""Load a transactions CSV, clean it as a retailer would, and cut evaluation splits.

Any CSV works given a column mapping; the defaults fit UCI Online Retail.
Everything is turned into dense integer indices early so that the methods
under test only ever see NumPy arrays.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

# Codes in UCI Online Retail that are not goods: postage, carriage, fees,
# manual adjustments, discounts, samples, bank charges, gift vouchers.
DEFAULT_EXCLUDE_ITEMS = (
    r"^(POST|DOT|C2|M|D|S|B|CRUK|PADS|AMAZONFEE|BANK CHARGES|ADJUST\d*|gift_\d+_\d+)$"
)
DAY = 86_400
# How a time column can be read (--time-format): guessed, a numeric unit, or a strptime layout.
TIME_UNITS = {"s": 1, "ms": 0.001, "day": DAY}
# Text layouts tried, in this order, when the times are not ISO 8601: month first before day
# first (UCI's own export, Ta-Feng), then year first and the European dotted form.
DATE_LAYOUTS = tuple(f"{date}{clock}" for date in ("%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%Y%m%d")
                     for clock in (" %H:%M:%S", " %H:%M", ""))
_EPOCH = datetime(1970, 1, 1)
_ONE_SECOND = datetime(1970, 1, 1, 0, 0, 1) - _EPOCH


@dataclass(frozen=True)
class ColumnMap:
    """Which CSV column holds what; quantity and price are optional. Without a basket column
    (``basket=None``: Ta-Feng, many till exports) a basket is a customer's lines of one time."""

    user: str = "CustomerID"
    item: str = "StockCode"
    basket: str | None = "InvoiceNo"
    time: str = "InvoiceDate"
    qty: str | None = "Quantity"
    price: str | None = "UnitPrice"
    category: str | None = None  # the item's catalogue category (read when the file has it)
    time_format: str = "auto"  # "auto", a unit of TIME_UNITS, "yyyymmdd" or a strptime layout
    delimiter: str = "auto"  # the field separator; "auto": the one of DELIMITERS the header has most of


@dataclass(frozen=True)
class CleanRules:
    """What a retailer drops before learning from orders."""

    cancel_prefix: str | None = "C"
    exclude_items: str | None = DEFAULT_EXCLUDE_ITEMS


@dataclass
class CleanReport:
    """How many raw rows went where; printed above the results table."""

    rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    times: str = ""  # how the time column was read

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


@dataclass(frozen=True)
class Transactions:
    """One line per (basket, item), indices dense and baskets ordered by time.

    ``basket`` indices grow with basket time, so "earlier basket" is a plain
    integer comparison.
    """

    user_labels: np.ndarray
    item_labels: np.ndarray
    user: np.ndarray  # int32 per line
    item: np.ndarray  # int32 per line
    basket: np.ndarray  # int32 per line
    time: np.ndarray  # int64 seconds per line (its basket's time)
    qty: np.ndarray  # float64 per line
    item_category: np.ndarray | None = None  # int64 per item (-1 unknown), if the file has one

    @property
    def n_users(self) -> int:
        return int(self.user_labels.size)

    @property
    def n_items(self) -> int:
        return int(self.item_labels.size)

    def subset(self, mask: np.ndarray) -> Transactions:
        """The same index spaces restricted to the selected lines."""
        return Transactions(
            self.user_labels,
            self.item_labels,
            self.user[mask],
            self.item[mask],
            self.basket[mask],
            self.time[mask],
            self.qty[mask],
            self.item_category,
        )


def _open_text(path: str) -> io.TextIOBase:
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _column_index(header: list[str], name: str | None, what: str) -> int | None:
    if name is None:
        return None
    try:
        return header.index(name)
    except ValueError:
        raise ValueError(
            f"column {name!r} for {what} not in the CSV header; columns are: {', '.join(header)}"
        ) from None


def read_times(raw: list[str], layout: str = "auto") -> tuple[np.ndarray, str]:
    """Unix seconds for each time, and how the times were read.

    ``auto`` takes numbers by their size (:func:`numeric_times`), then ISO 8601, then the
    first of ``DATE_LAYOUTS`` that reads every value. A layout asked for is used as given.
    """
    values, where = np.unique(np.asarray(raw, dtype=str), return_inverse=True)
    numeric = layout in TIME_UNITS or layout in ("auto", "yyyymmdd")
    if numeric:
        try:  # numbers first: NumPy would read "1704067300" as a year
            numbers = values.astype(np.float64)
        except ValueError:
            if layout != "auto":
                raise ValueError(f"--time-format {layout} needs numbers; {_first_unreadable(raw, float)}") from None
        else:
            seconds, how = numeric_times(numbers, layout)
            return seconds[where], how
    if layout == "auto":
        try:
            return np.array(values, dtype="datetime64[s]").astype(np.int64)[where], "ISO 8601 dates and times"
        except ValueError:
            pass
        fits = [f for f in DATE_LAYOUTS if _reads_all(values, f)]
        if not fits:
            raise ValueError(f"{_first_unreadable(raw, _any_layout)}; name the layout with --time-format, "
                             "e.g. '%d/%m/%Y %H:%M'")
        layout = fits[0]
        how = f"dates and times as {layout}"
        other = [f for f in fits[1:] if f.split()[0] != layout.split()[0]]
        if other:  # e.g. every day of the month 12 or less: month first and day first both read
            how += f" (they read as {other[0]} too: say --time-format '{other[0]}' if that is meant)"
    else:
        how = f"dates and times as {layout}"
        if not _reads_all(values, layout):
            raise ValueError(_first_unreadable(raw, lambda v: datetime.strptime(v, layout)))
    seconds = np.array([(datetime.strptime(v, layout) - _EPOCH) // _ONE_SECOND for v in values], dtype=np.int64)
    return seconds[where], how


def numeric_times(values: np.ndarray, unit: str = "auto") -> tuple[np.ndarray, str]:
    """Numeric times as Unix seconds (int64), and how they were read.

    ``auto`` goes by size: whole numbers that are all valid dates between 1900 and 2100
    written YYYYMMDD are dates; numbers all under a million are day numbers (a million
    seconds after 1970 is no shop's data; Dunnhumby numbers its days 1-711); a hundred
    billion and over are milliseconds; the rest Unix seconds.
    """
    values = np.asarray(values)
    if unit == "auto":
        unit = _guess_unit(values)
    if unit == "yyyymmdd":
        days, where = np.unique(values, return_inverse=True)
        stamps = np.zeros(days.size, dtype=np.int64)
        for n, d in enumerate(days):
            whole = int(d)
            try:
                if whole != d:
                    raise ValueError
                stamp = np.datetime64(f"{whole // 10000:04d}-{whole // 100 % 100:02d}-{whole % 100:02d}", "s")
            except ValueError:
                raise ValueError(f"time {d:.10g} is no date written YYYYMMDD") from None
            stamps[n] = stamp.astype(np.int64)
        return stamps[where], "dates written YYYYMMDD"
    how = {"s": "Unix seconds", "ms": "Unix milliseconds", "day": "day numbers"}[unit]
    if unit == "day" and values.size:
        how += f" ({values.min():g}-{values.max():g}), each day from midnight"
    if np.issubdtype(values.dtype, np.integer):  # no float copy of a chain-sized column
        seconds = values // 1000 if unit == "ms" else values.astype(np.int64, copy=False) * int(TIME_UNITS[unit])
        return seconds.astype(np.int64, copy=False), how
    return np.round(values * TIME_UNITS[unit]).astype(np.int64), how


def _guess_unit(values: np.ndarray) -> str:
    if not values.size:
        return "s"
    low, high = float(values.min()), float(values.max())
    if 19000101 <= low and high <= 21001231 and _is_yyyymmdd(values):
        return "yyyymmdd"
    if high < 1e6:
        return "day"
    return "ms" if high >= 1e11 else "s"


def _is_yyyymmdd(values: np.ndarray) -> bool:
    whole = values.astype(np.int64)
    if not np.array_equal(whole, values):
        return False
    month, day = whole // 100 % 100, whole % 100
    return bool(np.all((month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)))



def _reads_all(values: np.ndarray, layout: str) -> bool:
    try:
        for v in values:
            datetime.strptime(v, layout)
    except ValueError:
        return False
    return True


def _any_layout(value: str) -> None:
    try:
        np.datetime64(value)
        return
    except ValueError:
        pass
    for layout in DATE_LAYOUTS:
        try:
            datetime.strptime(value, layout)
            return
        except ValueError:
            continue
    raise ValueError(value)


def _first_unreadable(raw: list[str], read: Callable[[str], object]) -> str:
    """Names the first value ``read`` refuses and its data row (the header is line 1)."""
    for row, value in enumerate(raw, start=2):
        try:
            read(value)
        except ValueError:
            return f"unreadable time {value!r} in data row near line {row}"
    return "unreadable times"


DELIMITERS = ",;\t|"


def _delimiter(path: str, asked: str) -> str:
    """``asked``, or for "auto" the one of DELIMITERS the header line has most of (a comma when none)."""
    if asked != "auto":
        return asked
    with _open_text(path) as handle:
        header = handle.readline()
    return max(DELIMITERS, key=header.count)


def _rows(path: str, delimiter: str) -> Iterator[list[str]]:
    with _open_text(path) as handle:
        yield from csv.reader(handle, delimiter=delimiter)


def _number(text: str, decimal_comma: bool) -> float:
    """A quantity or price; with ``decimal_comma`` (fields not separated by commas, as in
    European exports) "2,5" reads as 2.5."""
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    return float(text)


def load_transactions(
    path: str, columns: ColumnMap = ColumnMap(), rules: CleanRules = CleanRules()
) -> tuple[Transactions, CleanReport]:
    """Read, clean and index a transactions CSV (plain or .gz)."""
    delimiter = _delimiter(path, columns.delimiter)
    decimal_comma = delimiter != ","
    rows = _rows(path, delimiter)
    try:
        header = next(rows)
    except StopIteration:
        raise ValueError(f"{path} is empty") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    iu = _column_index(header, columns.user, "user")
    ii = _column_index(header, columns.item, "item")
    ib = _column_index(header, columns.basket, "basket")
    it = _column_index(header, columns.time, "time")
    iq = _column_index(header, columns.qty, "quantity")
    ip = _column_index(header, columns.price, "price")
    exclude = re.compile(rules.exclude_items) if rules.exclude_items else None
    width = len(header)

    report = CleanReport()
    users: list[str] = []
    items: list[str] = []
    baskets: list[str] = []
    times: list[str] = []
    qtys: list[float] = []
    for row in rows:
        report.rows += 1
        if len(row) < width:
            report.drop("short row")
            continue
        user = row[iu].strip()  # type: ignore[index]
        if user.endswith(".0"):  # pandas-exported float ids: 17850.0 -> 17850
            user = user[:-2]
        if not user or user.lower() == "nan":
            report.drop("unknown customer")
            continue
        # No basket column: the customer's lines of one time are one basket (_index keys on both).
        basket = row[ib if ib is not None else it].strip()  # type: ignore[index]
        if ib is not None and rules.cancel_prefix and basket.startswith(rules.cancel_prefix):
            report.drop("cancellation")
            continue
        item = row[ii].strip()  # type: ignore[index]
        if not item:
            report.drop("no item")
            continue
        if exclude is not None and exclude.match(item):
            report.drop("fee/postage code")
            continue
        qty = 1.0
        if iq is not None:
            try:
                qty = _number(row[iq], decimal_comma)
            except ValueError:
                report.drop("bad quantity")
                continue
            if not qty > 0:
                report.drop("quantity <= 0")
                continue
        if ip is not None:
            try:
                price = _number(row[ip], decimal_comma)
            except ValueError:
                report.drop("bad price")
                continue
            if not price > 0:
                report.drop("price <= 0")
                continue
        users.append(user)
        items.append(item)
        baskets.append(basket)
        times.append(row[it].strip())  # type: ignore[index]
        qtys.append(qty)
    if not users:
        raise ValueError(f"no usable rows in {path} after cleaning ({report.dropped})")
    report.kept = len(users)
    seconds, report.times = read_times(times, columns.time_format)
    return _index(users, items, baskets, seconds, np.array(qtys)), report


def _index(
    users: list[str], items: list[str], baskets: list[str], times: np.ndarray, qtys: np.ndarray
) -> Transactions:
    """Dense indices; one line per (basket, item); baskets numbered by time."""
    user_labels, user = np.unique(np.array(users, dtype=object), return_inverse=True)
    item_labels, item = np.unique(np.array(items, dtype=object), return_inverse=True)
    # A basket id is only unique within its user in some exports, so key on both.
    bkey = np.char.add(np.char.add(np.array(users, dtype=str), "\x1f"), np.array(baskets, dtype=str))
    _, braw = np.unique(bkey, return_inverse=True)
    n_b = int(braw.max()) + 1
    btime = np.full(n_b, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(btime, braw, times)
    order = np.lexsort((np.arange(n_b), btime))  # time, then first-seen order
    rank = np.empty(n_b, dtype=np.int64)
    rank[order] = np.arange(n_b)
    basket = rank[braw]
    # Merge duplicate (basket, item) lines, summing quantity.
    key = basket * item_labels.size + item
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    qty = np.bincount(inv, weights=qtys)
    b = (ukey // item_labels.size).astype(np.int32)
    return Transactions(
        user_labels=user_labels,
        item_labels=item_labels,
        user=user[first].astype(np.int32),
        item=(ukey % item_labels.size).astype(np.int32),
        basket=b,
        time=btime[order][b],
        qty=qty,
    )


def load_numeric(
    path: str, columns: ColumnMap = ColumnMap(), rules: CleanRules = CleanRules(),
    block_bytes: int = 1 << 26,
) -> tuple[Transactions, CleanReport]:
    """Read a CSV whose columns are all integers (times as :func:`numeric_times` reads them) block by block.

    For chain-sized files (tens of millions of lines, e.g. bench/synth_chain.py)
    where the general reader's Python rows would not fit in memory. The same
    cleaning applies: quantities <= 0 dropped, item codes matching
    ``rules.exclude_items`` dropped (cancellation prefixes cannot occur).
    """
    opener = gzip.open if path.endswith(".gz") else open
    sep = _delimiter(path, columns.delimiter).encode()
    with opener(path, "rb") as handle:
        header = [h.strip().lstrip("\ufeff") for h in handle.readline().decode("utf-8").split(sep.decode())]
        cols = [_column_index(header, name, what) for name, what in (
            (columns.user, "user"), (columns.item, "item"), (columns.basket, "basket"),
            (columns.time, "time"), (columns.qty, "quantity"))]
        # Older files have no category column: then there is none.
        cols.append(header.index(columns.category) if columns.category in header else None)
        width = len(header)
        parts: list[list[np.ndarray]] = [[] for _ in cols]
        rest = b""
        while True:
            chunk = handle.read(block_bytes)
            if not chunk and not rest:
                break
            data = rest + chunk
            cut = data.rfind(b"\n") + 1 if chunk else len(data)
            body, rest = data[:cut], data[cut:]
            if body.strip():
                values = np.array(body.replace(b"\n", sep).rstrip(sep + b"\r ").split(sep), dtype=np.int64)
                if values.size % width:
                    raise ValueError(f"{path}: a row does not have {width} integer fields")
                rows = values.reshape(-1, width)
                for n, c in enumerate(cols):  # times need 64 bits, ids and quantities 32
                    if c is not None:
                        parts[n].append(rows[:, c].astype(np.int64 if n == 3 else np.int32))
                del values, rows
            if not chunk:
                break
    if not parts[0]:
        raise ValueError(f"{path} has no data rows")
    table = [np.concatenate(p) if p else None for p in parts]
    del parts
    user, item, basket, when, qty_col, cat_col = table
    if basket is None:  # no basket column: a customer's lines of one time are one basket
        basket = when
    report = CleanReport(rows=int(user.size))  # type: ignore[union-attr]
    keep = np.ones(report.rows, dtype=bool)
    if qty_col is not None:
        bad = qty_col <= 0
        report.dropped["quantity <= 0"] = int(bad.sum())
        keep &= ~bad
    if rules.exclude_items:
        pattern = re.compile(rules.exclude_items)
        codes = np.unique(item)  # type: ignore[arg-type]
        excluded = np.array([bool(pattern.match(str(c))) for c in codes])
        if excluded.any():
            bad = np.isin(item, codes[excluded])  # type: ignore[arg-type]
            report.dropped["fee/postage code"] = int((bad & keep).sum())
            keep &= ~bad
    report.kept = int(keep.sum())
    if report.kept == 0:
        raise ValueError(f"no usable rows in {path} after cleaning ({report.dropped})")
    if report.kept < report.rows:
        user, item, basket, when = (a[keep] for a in (user, item, basket, when))  # type: ignore[index]
        qty_col = qty_col[keep] if qty_col is not None else None
        cat_col = cat_col[keep] if cat_col is not None else None
    qty = qty_col.astype(np.float64) if qty_col is not None else np.ones(report.kept)
    if columns.time_format not in TIME_UNITS and columns.time_format not in ("auto", "yyyymmdd"):
        raise ValueError(f"the all-integer reader reads numeric times only, not {columns.time_format!r}")
    when, report.times = numeric_times(when, columns.time_format)  # type: ignore[arg-type]
    out = _index_numeric(user, item, basket, when, qty)  # type: ignore[arg-type]
    if cat_col is not None:
        # One category per item: the one on its first line (a catalogue has one per SKU).
        _, first = np.unique(item, return_index=True)  # same order as out.item_labels
        out = dataclasses.replace(out, item_category=cat_col[first].astype(np.int64))
    return out, report


def _index_numeric(users: np.ndarray, items: np.ndarray, baskets: np.ndarray, times: np.ndarray,
                   qtys: np.ndarray) -> Transactions:
    """:func:`_index` for integer ids, without Python objects per line."""
    user_labels, user = np.unique(users, return_inverse=True)
    item_labels, item = np.unique(items, return_inverse=True)
    span = int(baskets.max()) - int(baskets.min()) + 1
    _, braw = np.unique(user.astype(np.int64) * span + (baskets.astype(np.int64) - int(baskets.min())),
                        return_inverse=True)
    n_b = int(braw.max()) + 1
    btime = np.full(n_b, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(btime, braw, times)
    order = np.lexsort((np.arange(n_b), btime))
    rank = np.empty(n_b, dtype=np.int64)
    rank[order] = np.arange(n_b)
    basket = rank[braw]
    key = basket * item_labels.size + item
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    qty = np.bincount(inv, weights=qtys)
    b = (ukey // item_labels.size).astype(np.int32)
    return Transactions(
        user_labels=user_labels.astype(str).astype(object),
        item_labels=item_labels.astype(str).astype(object),
        user=user[first].astype(np.int32),
        item=(ukey % item_labels.size).astype(np.int32),
        basket=b,
        time=btime[order][b],
        qty=qty,
    )


@dataclass(frozen=True)
class Split:
    """Training lines plus, per test user, the held-out items and the request time."""

    name: str
    train: Transactions
    test_users: np.ndarray
    test_items: list[np.ndarray]
    now: np.ndarray


def leave_last_basket_out(data: Transactions) -> Split:
    """Hold out each customer's last basket, for customers with at least 2 baskets."""
    n_b = int(data.basket.max()) + 1
    b_user = np.full(n_b, -1, dtype=np.int64)
    b_user[data.basket] = data.user
    present = np.flatnonzero(b_user >= 0)
    last = np.full(data.n_users, -1, dtype=np.int64)
    count = np.bincount(b_user[present], minlength=data.n_users)
    np.maximum.at(last, b_user[present], present)  # basket index grows with time
    test_basket = np.where(count >= 2, last, -1)
    held = test_basket[data.user] == data.basket
    users = np.flatnonzero(test_basket >= 0)
    return _make_split("leave-last-basket-out", data, held, users)


def time_split(data: Transactions, days: int = 30) -> Split:
    """Train on everything before the last ``days`` days; test customers seen in both parts."""
    cutoff = int(data.time.max()) - days * DAY
    held = data.time > cutoff
    known = np.zeros(data.n_users, dtype=bool)
    known[data.user[~held]] = True
    tested = np.zeros(data.n_users, dtype=bool)
    tested[data.user[held]] = True
    users = np.flatnonzero(known & tested)
    split = _make_split(f"time split (last {days} days)", data, held, users)
    return Split(split.name, split.train, split.test_users, split.test_items,
                 np.full(users.size, cutoff, dtype=np.int64))


def _make_split(name: str, data: Transactions, held: np.ndarray, users: np.ndarray) -> Split:
    test = data.subset(held)
    order = np.argsort(test.user, kind="stable")
    bounds = np.searchsorted(test.user[order], np.arange(data.n_users + 1))
    items: list[np.ndarray] = []
    now = np.empty(users.size, dtype=np.int64)
    for n, u in enumerate(users):
        sel = order[bounds[u] : bounds[u + 1]]
        items.append(np.unique(test.item[sel]))
        now[n] = test.time[sel].min()
    return Split(name, data.subset(~held), users.astype(np.int64), items, now)
