"""What every command shares: argument types, output helpers, exit codes and errors."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from types import ModuleType
from typing import Any, TextIO

from tqdm import tqdm

from loyalty import config, db, migrate
from loyalty.common import local_midnight, yuan_to_fen
from loyalty.errors import InvalidInput

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


class UsageError(Exception):
    """Bad input caught by the CLI itself (exit code 2)."""


class NotReady(Exception):
    """The database cannot serve the command yet (exit code 1)."""


def is_date(text: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()) is not None


def parse_when(text: str) -> datetime:
    """An ISO date (local midnight) or date-time; without a zone it is Asia/Shanghai time."""
    try:
        if is_date(text):
            return local_midnight(date.fromisoformat(text.strip()))
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date or time: {text!r} (e.g. 2026-03-01 or 2026-03-01T09:30+08:00)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=config.SHANGHAI)


def parse_last_day(text: str) -> datetime:
    """A last day (valid through its end, local time) or an exact end time."""
    at = parse_when(text)
    return at + timedelta(days=1) if is_date(text) else at


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def parse_yuan(text: str) -> int:
    """A yuan amount as fen."""
    try:
        return yuan_to_fen(text)
    except InvalidInput:
        raise argparse.ArgumentTypeError(f"not an amount in yuan with at most 2 decimals: {text!r}") from None


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {n}")
        return n

    return parse


def parse_source(text: str) -> str:
    if not SOURCE_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"not a source name: {text!r} (1-32 lower-case letters, digits, '.', '_' or '-', e.g. pos)"
        )
    return text


def text_of(max_len: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        t = text.strip()
        if not t or len(t) > max_len:
            raise argparse.ArgumentTypeError(f"must be 1-{max_len} characters, got {len(t)}")
        return t

    return parse


def err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def progress_bar(total: int, desc: str, unit: str) -> tqdm:
    # disable=None: the bar shows on a terminal and stays out of logs and pipes.
    return tqdm(total=total, desc=desc, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True)


def require_schema() -> None:
    if migrate.current(db.engine()) is None:
        raise NotReady("the database has no tables yet: run `python -m loyalty db upgrade` first")


def optional_module(name: str, what: str) -> ModuleType:
    """Import a part another package of the project provides, with a clear message if absent."""
    if importlib.util.find_spec(name) is None:
        raise NotReady(f"{what} needs {name}, which this installation does not have")
    return importlib.import_module(name)


def cell_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print rows aligned in columns (Chinese characters count double)."""
    body = [[str(c) for c in r] for r in rows]
    widths = [max([cell_width(h)] + [cell_width(r[i]) for r in body]) for i, h in enumerate(headers)]
    for r in [list(headers)] + body:
        cells = [c + " " * (w - cell_width(c)) for c, w in zip(r, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out or sys.stdout)


def local_time(at: datetime | None) -> str:
    return at.astimezone(config.SHANGHAI).strftime("%Y-%m-%d %H:%M") if at else "-"


def through(end: datetime | None) -> str:
    """An exclusive end as people say it: a local midnight is "through" the day before."""
    if end is None:
        return "-"
    local = end.astimezone(config.SHANGHAI)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return f"through {(local.date() - timedelta(days=1)).isoformat()}"
    return f"until {local:%Y-%m-%d %H:%M}"


def command_group(sub: Any, name: str, help_text: str) -> Any:
    """A command with actions of its own (``python -m loyalty points adjust``)."""
    g = sub.add_parser(name, help=help_text, description=help_text)
    return g.add_subparsers(dest="action", required=True, metavar="action")
