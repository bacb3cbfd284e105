"""``python -m bot.qr``: write printable QR codes (PNG, SVG) for stores.

    python -m bot.qr --all --out posters/
    python -m bot.qr --store SH001 --out posters/ --format png
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.qr import QrError
from bot.qr.codes import DEFAULT_CACHE_DIR, StoreQrCodes
from bot.qr.render import FORMATS, Format, file_name, render
from bot.settings import (
    SettingsError,
)
from bot.wechat.errors import WeChatApiError
from loyalty import db
from loyalty.catalogue import service as catalogue
from loyalty.catalogue.service import StoreView
from loyalty.errors import NotFound, Unavailable


def _formats(raw: str) -> list[Format]:
    chosen = [part.strip().lower() for part in raw.split(",") if part.strip()]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FORMATS)} (comma separated), got {raw!r}")
    return list(dict.fromkeys(chosen))  # type: ignore[arg-type]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.qr", description="Write printable QR codes (PNG, SVG) for stores."
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--store", action="append", metavar="CODE", help="a store code (repeatable)")
    which.add_argument("--all", action="store_true", help="every active store")
    parser.add_argument("--out", required=True, type=Path, help="folder for the files")
    parser.add_argument("--format", type=_formats, default=list(FORMATS), help="png,svg (default both)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="WeChat ticket cache")
    return parser


def _lookup(codes: Sequence[str] | None) -> tuple[list[StoreView], list[str]]:
    """The stores asked for (all active ones without ``codes``) and the unknown codes."""
    if codes is None:
        return db.run(catalogue.stores, readonly=True), []
    found: list[StoreView] = []
    unknown: list[str] = []
    for code in codes:
        try:
            found.append(db.run(catalogue.store, code, readonly=True))
        except NotFound:
            unknown.append(code)
    return found, unknown


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a half-written poster never replaces a good one


async def _write_all(
    codes: StoreQrCodes, stores: Sequence[StoreView], out: Path, formats: Sequence[Format]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, store in enumerate(stores, 1):
        qr = await codes.target_of(store)
        paths = []
        for fmt in formats:
            path = out / file_name(store.code, fmt)
            await asyncio.to_thread(_write_file, path, render(qr, fmt))
            paths.append(str(path))
        print(f"[{i}/{len(stores)}] {store.code}  {qr.kind}  {qr.content}  -> {', '.join(paths)}", flush=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Command line entry; returns the exit status (2: unknown store or bad usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        stores, unknown = _lookup(None if args.all else args.store)
    except Unavailable:
        print("error: the loyalty database is unavailable (run `make db` first?)", file=sys.stderr)
        return 1
    if unknown:
        known = ", ".join(s.code for s in db.run(catalogue.stores, readonly=True)) or "none"
        print(f"error: unknown store(s): {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return 2
    if not stores:
        print("error: there are no active stores (run `python -m loyalty seed`?)", file=sys.stderr)
        return 1
    try:
        codes = StoreQrCodes.from_env(env, cache_dir=args.cache_dir)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(_write_all(codes, stores, args.out, args.format))
    except (QrError, WeChatApiError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        codes.close()
    print(f"{len(stores)} store(s) written to {args.out} ({codes.kind} codes)")
    return 0

