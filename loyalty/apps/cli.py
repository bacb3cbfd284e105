"""Staff command line: ``python -m loyalty <command> ...`` (``--help`` on any command).

Exit codes: 0 done; 1 refused by a business rule, the database not ready or
unavailable, or an import that rejected some rows; 2 bad input (the message
names it, nothing was written). A :class:`LoyaltyError` prints its code and
message. Times without a zone are Asia/Shanghai, the shops' time.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import importlib.util
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session
from tqdm import tqdm

from loyalty import config, db, migrate
from loyalty.catalogue.models import Product
from loyalty.common import fen_to_yuan, local_date, local_midnight, yuan_to_fen
from loyalty.coupons import gifts
from loyalty.coupons import service as coupons
from loyalty.coupons.models import CouponCampaign
from loyalty.errors import InvalidInput, LoyaltyError, NotFound, Refused
from loyalty.members import service as members
from loyalty.membership import service as membership
from loyalty.nlu_review import service as review
from loyalty.orders import service as orders
from loyalty.points import service as points
from loyalty.tiers import service as tiers

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


class UsageError(Exception):
    """Bad input caught by the CLI itself (exit code 2)."""


class NotReady(Exception):
    """The database cannot serve the command yet (exit code 1)."""


# ---------------------------------------------------------------------------
# Argument types: each raises ArgumentTypeError, so argparse names the flag
# ---------------------------------------------------------------------------


def _is_date(text: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()) is not None


def _when(text: str) -> datetime:
    """An ISO date (local midnight) or date-time; without a zone it is Asia/Shanghai time."""
    try:
        if _is_date(text):
            return local_midnight(date.fromisoformat(text.strip()))
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date or time: {text!r} (e.g. 2026-03-01 or 2026-03-01T09:30+08:00)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=config.SHANGHAI)


def _last_day(text: str) -> datetime:
    """A last day (valid through its end, local time) or an exact end time."""
    at = _when(text)
    return at + timedelta(days=1) if _is_date(text) else at


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _yuan(text: str) -> int:
    """A yuan amount as fen."""
    try:
        return yuan_to_fen(text)
    except InvalidInput:
        raise argparse.ArgumentTypeError(f"not an amount in yuan with at most 2 decimals: {text!r}") from None


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {n}")
        return n

    return parse


def _source(text: str) -> str:
    if not SOURCE_RE.match(text):
        raise argparse.ArgumentTypeError(
            f"not a source name: {text!r} (1-32 lower-case letters, digits, '.', '_' or '-', e.g. pos)"
        )
    return text


def _text(max_len: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        t = text.strip()
        if not t or len(t) > max_len:
            raise argparse.ArgumentTypeError(f"must be 1-{max_len} characters, got {len(t)}")
        return t

    return parse


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _bar(total: int, desc: str, unit: str) -> tqdm:
    # disable=None: the bar shows on a terminal and stays out of logs and pipes.
    return tqdm(total=total, desc=desc, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True)


def _require_schema() -> None:
    if migrate.current(db.engine()) is None:
        raise NotReady("the database has no tables yet: run `python -m loyalty db upgrade` first")


def _optional_module(name: str, what: str) -> ModuleType:
    """Import a part another package of the project provides, with a clear message if absent."""
    if importlib.util.find_spec(name) is None:
        raise NotReady(f"{what} needs {name}, which this installation does not have")
    return importlib.import_module(name)


def _cell_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print rows aligned in columns (Chinese characters count double)."""
    body = [[str(c) for c in r] for r in rows]
    widths = [max([_cell_width(h)] + [_cell_width(r[i]) for r in body]) for i, h in enumerate(headers)]
    for r in [list(headers)] + body:
        cells = [c + " " * (w - _cell_width(c)) for c, w in zip(r, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out or sys.stdout)


def _local(at: datetime | None) -> str:
    return at.astimezone(config.SHANGHAI).strftime("%Y-%m-%d %H:%M") if at else "-"


def _through(end: datetime | None) -> str:
    """An exclusive end as people say it: a local midnight is "through" the day before."""
    if end is None:
        return "-"
    local = end.astimezone(config.SHANGHAI)
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        return f"through {(local.date() - timedelta(days=1)).isoformat()}"
    return f"until {local:%Y-%m-%d %H:%M}"


# ---------------------------------------------------------------------------
# db
# ---------------------------------------------------------------------------


def _head(engine: Any) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()


def cmd_db_upgrade(a: argparse.Namespace) -> int:
    e = db.engine()
    before = migrate.current(e)
    migrate.upgrade(e)
    after = migrate.current(e)
    where = e.url.render_as_string(hide_password=True)
    if before == after:
        print(f"{where}: schema already at {after} (head)")
    else:
        print(f"{where}: schema upgraded {before or '(empty)'} -> {after}")
    return EXIT_OK


def cmd_db_current(a: argparse.Namespace) -> int:
    e = db.engine()
    rev, head = migrate.current(e), _head(e)
    where = e.url.render_as_string(hide_password=True)
    if rev is None:
        print(f"{where}: empty (no schema): run `python -m loyalty db upgrade`")
    elif rev == head:
        print(f"{where}: {rev} (head)")
    else:
        print(f"{where}: {rev} (head is {head}: run `python -m loyalty db upgrade`)")
    return EXIT_OK


# ---------------------------------------------------------------------------
# seed
# ---------------------------------------------------------------------------


def cmd_seed(a: argparse.Namespace) -> int:
    from loyalty.apps import demo  # only this command needs the generator

    if not db.run(demo.is_empty, readonly=True):
        if a.if_empty:
            print("the database already has stores: seed skipped")
            return EXIT_OK
        raise Refused("The database already has stores; seed fills only an empty database "
                      "(--if-empty skips it quietly).", code="database_not_empty")
    plan = demo.make_plan(a.members, a.seed, a.until, a.days)
    with _bar(len(plan.events), "seeding", "event") as bar:
        r = demo.load(plan, progress=bar.update)
    span = f"{_local(plan.start)[:10]} .. {_local(plan.end - timedelta(seconds=1))[:10]}"
    print(f"seeded {span} (seed {a.seed}) in {r.load_seconds:.1f} s")
    _table(("what", "count"), [
        ("stores", r.stores), ("products", r.products), ("members", r.members), ("orders", r.orders),
        ("returns", r.returns), ("order lines", r.order_lines), ("referrals", r.referrals),
        ("coupons issued", r.coupons_issued), ("coupons redeemed", r.coupons_redeemed),
        ("points earned", r.points_earned), ("points expired", r.points_expired),
        ("tier changes", r.tier_changes),
        ("tiers (active)", ", ".join(f"{k} {v}" for k, v in r.tiers.items())),
    ])
    print("No API keys were created. Give each till or web shop its own key, for example:\n"
          "  python -m loyalty apikey create pos\n"
          "  python -m loyalty apikey create shop")
    return EXIT_OK


# ---------------------------------------------------------------------------
# campaign
# ---------------------------------------------------------------------------


def _campaign_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The create_campaign fields of the command line, after the checks the service leaves to callers."""
    only = {"--threshold": ("threshold", a.threshold), "--discount": ("threshold", a.discount),
            "--percent": ("percent", a.percent), "--gift-sku": ("gift", a.gift_sku)}
    for flag, (kind, value) in only.items():
        if value is not None and a.kind != kind:
            raise UsageError(f"{flag} applies only to --kind {kind}")
    need = {"threshold": ("--discount", a.discount), "percent": ("--percent", a.percent),
            "gift": ("--gift-sku", a.gift_sku)}[a.kind]
    if need[1] is None:
        raise UsageError(f"--kind {a.kind} needs {need[0]}")
    # A date means whole local days: claims from the first day's midnight through the last day.
    start = a.claim_start
    end = a.claim_end
    until = a.valid_until
    if start and end and end <= start:
        raise UsageError("--claim-end must be after --claim-start")
    if until is not None and until <= db.utcnow():
        raise UsageError("--valid-until is in the past")
    if until is not None and start is not None and until <= start:
        raise UsageError("--valid-until must be after --claim-start")
    f: dict[str, Any] = {
        "code": a.code, "kind": a.kind, "name_zh": a.name_zh, "name_en": a.name_en, "audience": a.audience,
        "per_member_limit": a.limit, "points_cost": a.points_cost, "total_stock": a.stock,
        "claim_start": start, "claim_end": end, "valid_until": until, "valid_days": a.valid_days,
        "min_tier": a.min_tier, "target_segment": a.segment,
    }
    if a.kind == "threshold":
        f["threshold_fen"] = a.threshold or 0
        f["discount_fen"] = a.discount
    elif a.kind == "percent":
        f["percent_off"] = a.percent
    else:
        f["gift_sku"] = a.gift_sku
    return f


def _create_campaign(s: Session, fields: dict[str, Any], actor: str) -> coupons.CampaignView:
    sku = fields.get("gift_sku")
    if sku and s.execute(select(Product.id).where(Product.sku == sku)).first() is None:
        raise InvalidInput(f"No product has SKU {sku!r}; --gift-sku must be a catalogue SKU.", code="unknown_sku")
    return coupons.create_campaign(s, actor=actor, **fields)


def _terms(kind: str, threshold_fen: int, discount_fen: int, percent_off: int, gift_sku: str | None) -> str:
    if kind == "threshold":
        off = fen_to_yuan(discount_fen).removesuffix(".00")
        if not threshold_fen:
            return f"无门槛减{off} ({off} off)"
        least = fen_to_yuan(threshold_fen).removesuffix(".00")
        return f"满{least}减{off} ({off} off {least})"
    if kind == "percent":
        zhe = Decimal(100 - percent_off) / 10
        return f"{zhe.normalize():f}折 ({percent_off}% off)"
    return f"兑换 {gift_sku} (gift)"


def cmd_campaign_create(a: argparse.Namespace) -> int:
    fields = _campaign_fields(a)
    v = db.run(_create_campaign, fields, a.actor)
    c_end = f", claims {_through(v.claim_end)}" if v.claim_end else ""
    stock = f", stock {v.left}" if v.left is not None else ""
    cost = f", costs {v.points_cost} points" if v.points_cost else ""
    terms = _terms(v.kind, yuan_to_fen(v.threshold), yuan_to_fen(v.discount), v.percent_off, v.gift_sku)
    print(f"created campaign {v.code} (id {v.id}): {v.name_zh} / {v.name_en}: {terms}{stock}{cost}{c_end}")
    return EXIT_OK


def _all_campaigns(s: Session) -> list[CouponCampaign]:
    return list(s.execute(select(CouponCampaign).order_by(CouponCampaign.id)).scalars())


def cmd_campaign_list(a: argparse.Namespace) -> int:
    rows = []
    for c in db.run(_all_campaigns, readonly=True):
        stock = "unlimited" if c.total_stock is None else f"{c.total_stock - c.issued}/{c.total_stock}"
        window = "always" if not (c.claim_start or c.claim_end) else (
            f"from {_local(c.claim_start)} " if c.claim_start else "") + _through(c.claim_end)
        valid = ", ".join(x for x in (f"{c.valid_days} days" if c.valid_days else "",
                                      _through(c.valid_until) if c.valid_until else "") if x)
        rows.append((
            c.code, c.audience, _terms(c.kind, c.threshold_fen, c.discount_fen, c.percent_off, c.gift_sku),
            stock, c.issued, c.points_cost or "-", c.min_tier or "-", c.target_segment or "-", window, valid,
            "yes" if c.active else "no", c.name_zh,
        ))
    if not rows:
        print("no campaigns yet: python -m loyalty campaign create --help")
        return EXIT_OK
    _table(("code", "audience", "terms", "left", "issued", "points", "tier", "segment", "claim window",
            "valid", "active", "name"), rows)
    return EXIT_OK


# ---------------------------------------------------------------------------
# points, tiers, gifts
# ---------------------------------------------------------------------------


def cmd_points_adjust(a: argparse.Namespace) -> int:
    mv = db.run(points.adjust, a.member_id, a.delta, reason=a.reason, actor=a.actor, key=a.key)
    print(f"member {a.member_id}: {mv.delta:+d} points, balance {mv.balance} (ledger entry {mv.entry_id})")
    return EXIT_OK


def cmd_points_expire(a: argparse.Namespace) -> int:
    at = a.now or db.utcnow()
    due = db.run(points.members_with_due_lots, at, readonly=True)
    total = touched = 0
    with _bar(len(due), "expiring", "member") as bar:
        for mid in due:
            # One transaction per member: a failure leaves the others done, and a re-run finishes the job.
            n = db.run(points.expire_due_for, mid, at)
            total += n
            touched += n > 0
            bar.update()
    print(f"expired {total} points of {touched} members (lots due by {_local(at)})")
    return EXIT_OK


def _review(s: Session, member_id: int, at: datetime) -> tuple[str, str]:
    before = membership.card(s, member_id).tier
    return before, tiers.review_member(s, member_id, at)


def cmd_tiers_review(a: argparse.Namespace) -> int:
    at = a.now or db.utcnow()
    due = db.run(tiers.members_due_for_review, at, readonly=True)
    up = down = 0
    with _bar(len(due), "reviewing", "member") as bar:
        for mid in due:
            before, after = db.run(_review, mid, at)
            up += tiers.rank(after) > tiers.rank(before)
            down += tiers.rank(after) < tiers.rank(before)
            bar.update()
    print(f"reviewed {len(due)} members as of {_local(at)}: {down} moved down, {up} moved up, "
          f"{len(due) - up - down} kept their tier")
    return EXIT_OK


def cmd_recommender_train(a: argparse.Namespace) -> int:
    from loyalty.recommender import service as recommender

    result = db.run(recommender.train_and_save, a.out, progress=True, readonly=True)
    print(f"trained recommender {result.version} on {result.members} members, {result.products} products, "
          f"{result.orders} orders in {result.seconds:.1f} s -> {result.path}")
    return EXIT_OK


def cmd_segments_recompute(a: argparse.Namespace) -> int:
    from loyalty.segments import job as segments_job

    run = db.run(segments_job.recompute_all, now=a.now or db.utcnow())
    print(f"segments of {run.members} members recomputed as of {_local(run.as_of)}")
    for title, counts in (("segment", run.by_segment), ("lifecycle", run.by_lifecycle)):
        print(f"  by {title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    return EXIT_OK


def cmd_gifts_birthday(a: argparse.Namespace) -> int:
    today = a.date or local_date(db.utcnow())
    due = db.run(gifts.birthday_members, today, readonly=True)
    held = 0
    with _bar(len(due), "birthday gifts", "member") as bar:
        for mid in due:
            # Idempotent per member and year: a re-run finds the coupon given before.
            held += db.run(gifts.grant_birthday, mid, today) is not None
            bar.update()
    print(f"{len(due)} members celebrate on {today}: {held} hold their birthday coupon, "
          f"{len(due) - held} have none (tier without a birthday gift, or the campaign is missing or empty)")
    return EXIT_OK


# ---------------------------------------------------------------------------
# orders import
# ---------------------------------------------------------------------------

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


def _whole(text: str) -> bool:
    """ASCII digits only ("²" is a digit to str.isdigit, not to int)."""
    return text.isascii() and text.isdigit()


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
    if head["member_id"] and not (_whole(head["member_id"]) and len(head["member_id"]) <= 18):
        order.problems.append(f"line {n}: member_id {head['member_id']!r} is not a member number")
    sku, qty, price = cell.get("sku", ""), cell.get("qty", ""), cell.get("unit_price", "")
    if not (sku or qty or price):
        return  # an order row without an item line (only its total)
    if not (sku and qty and price):
        order.problems.append(f"line {n}: sku, qty and unit_price go together")
    elif not _whole(qty) or int(qty) < 1:
        order.problems.append(f"line {n}: qty {qty!r} is not a whole number above 0")
    else:
        order.lines.append({"sku": sku, "qty": int(qty), "unit_price": price})


def cmd_orders_import(a: argparse.Namespace) -> int:
    batch, loose = _read_orders(a.file)
    created = replayed = earned = 0
    rejected: list[str] = list(loose)
    for msg in loose:
        print(f"rejected: {msg}", file=sys.stderr)
    with _bar(len(batch), "importing", "order") as bar:
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


# ---------------------------------------------------------------------------
# apikey, serve
# ---------------------------------------------------------------------------


def cmd_apikey_create(a: argparse.Namespace) -> int:
    apikeys = _optional_module("loyalty.apikeys.service", "apikey")
    key = db.run(apikeys.create_api_client, a.source, actor=a.actor)
    print(key)
    print(f"API key for {a.source!r} created. It is shown this once: put it in that system's configuration "
          "now (header Authorization: Bearer <key>).", file=sys.stderr)
    return EXIT_OK


def cmd_apikey_rotate(a: argparse.Namespace) -> int:
    apikeys = _optional_module("loyalty.apikeys.service", "apikey")
    key = db.run(apikeys.rotate_key, a.source, actor=a.actor)
    print(key)
    print(f"New API key for {a.source!r}; the old one stopped working. It is shown this once.", file=sys.stderr)
    return EXIT_OK


def cmd_apikey_revoke(a: argparse.Namespace) -> int:
    apikeys = _optional_module("loyalty.apikeys.service", "apikey")
    was_active = db.run(apikeys.deactivate, a.source, actor=a.actor)
    print(f"API key of {a.source!r} revoked" if was_active else f"API key of {a.source!r} was already revoked")
    return EXIT_OK


def cmd_apikey_list(a: argparse.Namespace) -> int:
    apikeys = _optional_module("loyalty.apikeys.service", "apikey")
    rows = [(c.source, "active" if c.active else "revoked", _local(c.created_at))
            for c in db.run(apikeys.clients, readonly=True)]
    if not rows:
        print("no API keys yet: python -m loyalty apikey create pos")
    else:
        _table(("source", "state", "created"), rows)
    return EXIT_OK


def cmd_serve(a: argparse.Namespace) -> int:
    api = _optional_module("loyalty.apps.api", "serve")
    if a.database_url:
        # Worker processes read the settings afresh from the environment.
        os.environ["LOYALTY_DATABASE_URL"] = a.database_url
    api.serve(a.host, a.port, workers=a.workers)
    return EXIT_OK


# ---------------------------------------------------------------------------
# agent (console accounts for the human takeover)
# ---------------------------------------------------------------------------


def _new_password(a: argparse.Namespace) -> str:
    """The password from stdin (--password-stdin) or typed twice at a prompt; never from argv."""
    if a.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        if not sys.stdin.isatty():
            raise UsageError("no terminal to ask the password on: pipe it with --password-stdin")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    return password


def cmd_agent_create(a: argparse.Namespace) -> int:
    auth = _optional_module("loyalty.handoff.auth", "agent")
    password = _new_password(a)
    view = db.run(auth.create_agent, a.username, password, role=a.role, display_name=a.name, actor=a.actor)
    print(f"{view.role} {view.username!r} created; they log in at /webhooks/console/")
    return EXIT_OK


def cmd_agent_password(a: argparse.Namespace) -> int:
    auth = _optional_module("loyalty.handoff.auth", "agent")
    view = db.run(auth.set_password, a.username, _new_password(a), actor=a.actor)
    print(f"password of {view.username!r} reset; their open sessions ended")
    return EXIT_OK


def cmd_agent_deactivate(a: argparse.Namespace) -> int:
    auth = _optional_module("loyalty.handoff.auth", "agent")
    view = db.run(auth.set_active, a.username, False, actor=a.actor)
    print(f"{view.username!r} can no longer log in")
    return EXIT_OK


def cmd_agent_list(a: argparse.Namespace) -> int:
    auth = _optional_module("loyalty.handoff.auth", "agent")
    rows = [(v.username, v.display_name, v.role, "active" if v.active else "deactivated")
            for v in db.run(auth.agents, active_only=False, readonly=True)]
    if not rows:
        print("no agents yet: python -m loyalty agent create NAME --role supervisor")
    else:
        _table(("username", "name", "role", "state"), rows)
    return EXIT_OK


# ---------------------------------------------------------------------------
# Review list: messages the assistant did not understand well
# ---------------------------------------------------------------------------


def _domain_intents(folder: Path) -> set[str]:
    """Every intent named in the domain files of a folder (empty if there is none)."""
    import yaml  # type: ignore[import-untyped]

    names: set[str] = set()
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or []:
            names.add(str(next(iter(entry)) if isinstance(entry, dict) else entry))
    return names


def _held_out(folder: Path) -> set[str]:
    """Normalised texts of the held-out evaluation set (tests/nlu_eval), never to be trained on."""
    import yaml  # type: ignore[import-untyped]

    texts: set[str] = set()
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
        for lines in (doc.get("capabilities") or {}).values():
            texts.update(review.normalise(str(t)) for t in lines)
    return texts


def _known_examples(data: Path, skip: Path) -> dict[str, str]:
    """Normalised text -> intent of every NLU example under data/ except the file ``skip``."""
    known: dict[str, str] = {}
    for path in sorted(data.rglob("*.yml")):
        if path.resolve() == skip.resolve():
            continue
        for intent, lines in review.parse_examples(path.read_text(encoding="utf-8")).items():
            for line in lines:
                known.setdefault(review.normalise(review.example_text(line)), intent)
    return known


def cmd_review_list(a: argparse.Namespace) -> int:
    status = None if a.status == "all" else a.status
    items = db.run(review.messages, status=status, language=a.lang, limit=a.limit, readonly=True)
    if not items:
        print("nothing to review" if status == "new" else "no messages")
        return EXIT_OK
    _table(("id", "seen", "lang", "reason", "guess", "runner-up", "status", "text"), [
        (i.id, i.seen, i.language or "?", i.reason, f"{i.intent} {i.confidence:.2f}",
         f"{i.second_intent} {i.second_confidence:.2f}" if i.second_intent and i.second_confidence is not None
         else "", i.reviewed_intent or i.status, i.text)
        for i in items])
    return EXIT_OK


def cmd_review_mark(a: argparse.Namespace) -> int:
    known = _domain_intents(a.domain)
    if known and a.intent not in known:
        raise UsageError(f"{a.intent!r} is no intent of {a.domain}/ (e.g. {', '.join(sorted(known)[:5])}, ...)")
    item = db.run(review.review, a.id, a.intent, by=a.by, language=a.lang)
    print(f"{item.id}: {item.text!r} -> {item.reviewed_intent} ({item.language or 'zh'})")
    return EXIT_OK


def cmd_review_dismiss(a: argparse.Namespace) -> int:
    item = db.run(review.dismiss, a.id, by=a.by)
    print(f"{item.id}: dismissed")
    return EXIT_OK


def cmd_review_export(a: argparse.Namespace) -> int:
    items = db.run(review.reviewed, readonly=True)
    if not items:
        print("no reviewed messages to export")
        return EXIT_OK
    held = _held_out(a.held_out)
    done: list[int] = []
    for lang in review.LANGUAGES:
        mine = [i for i in items if (i.language or "zh") == lang]
        if not mine:
            continue
        target = a.data / lang / "review.yml"
        current = target.read_text(encoding="utf-8") if target.exists() else None
        merge = review.merge_reviewed(current, mine, known=_known_examples(a.data, target), held_out=held)
        for message_id, why in merge.skipped:
            print(f"  {message_id}: left out, {why}")
        print(f"{target}: {len(merge.added)} of {len(mine)} reviewed messages")
        if not a.dry_run:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(merge.text, encoding="utf-8")
            done += merge.added
    if not a.dry_run:
        n = db.run(review.mark_exported, done)
        print(f"{n} messages marked exported; retrain the model (make train) to learn them")
    return EXIT_OK


# ---------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------


def _group(sub: Any, name: str, help_text: str) -> Any:
    """A command with actions of its own (``python -m loyalty points adjust``)."""
    g = sub.add_parser(name, help=help_text, description=help_text)
    return g.add_subparsers(dest="action", required=True, metavar="action")


def _add_db(sub: Any) -> None:
    dbg = _group(sub, "db", "database schema")
    dbg.add_parser("upgrade", help="migrate the schema to the latest revision").set_defaults(
        func=cmd_db_upgrade, needs_schema=False)
    dbg.add_parser("current", help="show the schema revision").set_defaults(func=cmd_db_current, needs_schema=False)


def _add_seed(sub: Any) -> None:
    s = sub.add_parser("seed", help="fill an empty database with deterministic demo data",
                       description="Stores, a catalogue and members with ~15 months of orders, through the services.")
    s.add_argument("--members", type=_int_in(1, 100_000), default=2000, help="how many members (default 2000)")
    s.add_argument("--seed", type=int, default=42, help="random seed: same seed and --until, same data")
    s.add_argument("--until", type=_day, help="first day after the history (default today, Asia/Shanghai)")
    s.add_argument("--days", type=_int_in(30, 3650), default=450, help="days of history (default 450)")
    s.add_argument("--if-empty", action="store_true", help="do nothing if the database already has stores")
    s.set_defaults(func=cmd_seed)


def _add_campaign(sub: Any) -> None:
    cg = _group(sub, "campaign", "coupon campaigns")
    c = cg.add_parser("create", help="create a coupon campaign",
                      description="Amounts in yuan. A date means whole local days: --claim-end and "
                                  "--valid-until include the day given.")
    c.add_argument("--code", required=True, type=_text(40))
    c.add_argument("--kind", required=True, choices=coupons.KINDS, help="threshold 满减 | percent 折扣 | gift 兑换")
    c.add_argument("--name-zh", required=True, type=_text(100))
    c.add_argument("--name-en", required=True, type=_text(100))
    c.add_argument("--threshold", type=_yuan, help="threshold: minimum order in yuan (default 0, no minimum)")
    c.add_argument("--discount", type=_yuan, help="threshold: yuan taken off")
    c.add_argument("--percent", type=_int_in(1, 99), help="percent: percent off (20 = 8折)")
    c.add_argument("--gift-sku", type=_text(64), help="gift: the SKU given")
    c.add_argument("--stock", type=_int_in(0, 10_000_000), help="coupons available in all (default unlimited)")
    c.add_argument("--limit", type=_int_in(0, 1000), default=1, help="coupons per member (0: no limit; default 1)")
    c.add_argument("--claim-start", type=_when, help="first day (or time) it can be claimed")
    c.add_argument("--claim-end", type=_last_day, help="last day it can be claimed (or the end time)")
    v = c.add_mutually_exclusive_group(required=True)
    v.add_argument("--valid-days", type=_int_in(1, 3650), help="each coupon is valid this many days from its claim")
    v.add_argument("--valid-until", type=_last_day, help="last day every coupon can be used")
    c.add_argument("--points-cost", type=_int_in(0, 10_000_000), default=0, help="points to exchange (default 0)")
    c.add_argument("--min-tier", choices=[t.code for t in config.settings().tiers], help="lowest tier that may claim")
    c.add_argument("--segment", type=_text(30), help="only members of this segment may claim")
    c.add_argument("--audience", choices=coupons.AUDIENCES, default="public",
                   help="public: listed to shoppers; others are granted (default public)")
    c.add_argument("--actor", type=_text(64), default="cli", help="who creates it, for the audit log")
    c.set_defaults(func=cmd_campaign_create)
    cg.add_parser("list", help="list every campaign").set_defaults(func=cmd_campaign_list)


def _add_points(sub: Any) -> None:
    pg = _group(sub, "points", "points ledger")
    adj = pg.add_parser("adjust", help="add or take points (audited)")
    adj.add_argument("member_id", type=_int_in(1, 2**62))
    adj.add_argument("delta", type=_int_in(-1_000_000, 1_000_000), help="points to add (negative: take)")
    adj.add_argument("--reason", required=True, type=_text(200))
    adj.add_argument("--actor", required=True, type=_text(64), help="the staff member making the change")
    adj.add_argument("--key", type=_text(100), help="idempotency key: the same key never adjusts twice")
    adj.set_defaults(func=cmd_points_adjust)
    exp = pg.add_parser("expire", help="expire every lot that is due (idempotent)")
    exp.add_argument("--now", type=_when, help="expire what is due by this time (default now)")
    exp.set_defaults(func=cmd_points_expire)


def _add_tiers(sub: Any) -> None:
    tg = _group(sub, "tiers", "member tiers")
    rv = tg.add_parser("review", help="apply the periodic tier review to every member due")
    rv.add_argument("--now", type=_when, help="review as of this time (default now)")
    rv.set_defaults(func=cmd_tiers_review)


def _add_recommender(sub: Any) -> None:
    rg = _group(sub, "recommender", "product recommendations")
    rt = rg.add_parser("train", help="retrain on every order and save a new versioned model file")
    rt.add_argument("--out", help="folder for model files (default LOYALTY_MODEL_DIR)")
    rt.set_defaults(func=cmd_recommender_train)


def _add_segments(sub: Any) -> None:
    sg = _group(sub, "segments", "RFM segments and lifecycle stages")
    sr = sg.add_parser("recompute", help="score every member and store segment, lifecycle and tags")
    sr.add_argument("--now", type=_when, help="as of this time (default now)")
    sr.set_defaults(func=cmd_segments_recompute)


def _add_gifts(sub: Any) -> None:
    gg = _group(sub, "gifts", "gifts")
    bd = gg.add_parser("birthday", help="give today's birthday coupons (once a year per member)",
                       description="Coupons given are valid from the moment the job runs.")
    bd.add_argument("--date", type=_day, help="the birthday to celebrate (default today, Asia/Shanghai)")
    bd.set_defaults(func=cmd_gifts_birthday)


def _add_orders(sub: Any) -> None:
    og = _group(sub, "orders", "orders from tills and the web shop")
    im = og.add_parser("import", help="import orders from a CSV file (idempotent)",
                       description="Columns: " + ", ".join(REQUIRED_COLUMNS) + ", and member_id or phone. "
                       "One row per item; rows with the same external_id form one order and repeat its fields. "
                       "Exit code 1 if any order was rejected (each is reported on stderr).")
    im.add_argument("file", type=Path)
    im.add_argument("--source", required=True, type=_source, help="the system the orders come from, e.g. pos")
    im.set_defaults(func=cmd_orders_import)


def _add_apikey(sub: Any) -> None:
    kg = _group(sub, "apikey", "API keys of tills and web shops")
    for name, fn, text in (("create", cmd_apikey_create, "create a key (printed once)"),
                           ("rotate", cmd_apikey_rotate, "replace a key (printed once)"),
                           ("revoke", cmd_apikey_revoke, "stop a key from working")):
        k = kg.add_parser(name, help=text)
        k.add_argument("source", type=_source)
        k.add_argument("--actor", type=_text(64), default="cli", help="who does it, for the audit log")
        k.set_defaults(func=fn)
    kg.add_parser("list", help="list the API clients").set_defaults(func=cmd_apikey_list)


def _add_agent(sub: Any) -> None:
    ag = _group(sub, "agent", "agent console accounts (human takeover)")
    ac = ag.add_parser("create", help="create an agent or supervisor (password asked, never on the command line)")
    ac.add_argument("username", type=_text(32))
    ac.add_argument("--role", choices=("agent", "supervisor"), default="agent")
    ac.add_argument("--name", type=_text(50), help="name shown to shoppers and colleagues (default the username)")
    ac.set_defaults(func=cmd_agent_create)
    ap = ag.add_parser("password", help="reset an agent's password and end their sessions")
    ap.add_argument("username", type=_text(32))
    ap.set_defaults(func=cmd_agent_password)
    for sp in (ac, ap):
        sp.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    ad = ag.add_parser("deactivate", help="stop an agent from logging in")
    ad.add_argument("username", type=_text(32))
    ad.set_defaults(func=cmd_agent_deactivate)
    for sp in (ac, ap, ad):
        sp.add_argument("--actor", type=_text(64), default="cli", help="who does it, for the audit log")
    ag.add_parser("list", help="list the agents").set_defaults(func=cmd_agent_list)


def _add_review(sub: Any) -> None:
    rg = _group(sub, "review", "messages the assistant did not understand well (masked) and their export")
    rl = rg.add_parser("list", help="list messages to review, most often seen first")
    rl.add_argument("--status", choices=(*review.STATUSES, "all"), default="new")
    rl.add_argument("--lang", choices=review.LANGUAGES)
    rl.add_argument("--limit", type=_int_in(1, 10_000), default=50)
    rl.set_defaults(func=cmd_review_list)
    rm = rg.add_parser("mark", help="mark a message with the intent it should have had")
    rm.add_argument("id", type=_int_in(1, 2**62))
    rm.add_argument("intent", type=_text(64))
    rm.add_argument("--lang", choices=review.LANGUAGES, help="its language, if the detector could not tell")
    rm.add_argument("--domain", type=Path, default=Path("domain"), help="domain folder to check the intent against")
    rd = rg.add_parser("dismiss", help="leave a message out of the training data")
    rd.add_argument("id", type=_int_in(1, 2**62))
    for sp in (rm, rd):
        sp.add_argument("--by", type=_text(64), default="cli", help="who reviews")
    rm.set_defaults(func=cmd_review_mark)
    rd.set_defaults(func=cmd_review_dismiss)
    rx = rg.add_parser("export", help="write reviewed messages into data/nlu/<lang>/review.yml (deduplicated)")
    rx.add_argument("--data", type=Path, default=Path("data/nlu"), help="the NLU data folder (default data/nlu)")
    rx.add_argument("--held-out", type=Path, default=Path("tests/nlu_eval"),
                    help="evaluation set whose messages are never exported (default tests/nlu_eval)")
    rx.add_argument("--dry-run", action="store_true", help="say what would be written, write nothing")
    rx.set_defaults(func=cmd_review_export)


def _add_serve(sub: Any) -> None:
    sv = sub.add_parser("serve", help="run the HTTP API for tills and the web shop")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=_int_in(1, 65535), default=8081)
    sv.add_argument("--workers", type=_int_in(1, 64), default=1)
    sv.set_defaults(func=cmd_serve, needs_schema=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    p = argparse.ArgumentParser(prog="python -m loyalty", description="Loyalty core: staff commands.")
    p.add_argument("--database-url", metavar="URL",
                   help="database to use instead of LOYALTY_DATABASE_URL (e.g. sqlite:///var/loyalty.db)")
    p.set_defaults(needs_schema=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    for add in (_add_db, _add_seed, _add_campaign, _add_points, _add_tiers, _add_recommender, _add_segments,
                _add_gifts, _add_orders, _add_apikey, _add_agent, _add_review, _add_serve):
        add(sub)
    return p


def _use_database(url: str) -> None:
    try:
        make_url(url)
        engine = db.make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UsageError(f"--database-url is not a usable database URL: {type(exc).__name__}") from None
    config.use(dataclasses.replace(config.settings(), database_url=url))
    db.configure(engine)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 done, 1 refused or partly done, 2 bad input)."""
    parser = build_parser()
    try:
        a = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage and the problem (or the help)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        if a.database_url:
            _use_database(a.database_url)
        if a.needs_schema:
            _require_schema()
        return int(a.func(a))
    except UsageError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    except (InvalidInput, NotFound) as exc:
        _err(f"{exc.code}: {exc.message}")
        return EXIT_BAD_INPUT
    except LoyaltyError as exc:
        _err(f"{exc.code}: {exc.message}")
        return EXIT_REFUSED
    except NotReady as exc:
        _err(str(exc))
        return EXIT_REFUSED
    except SQLAlchemyError as exc:
        # Unreachable, or a schema older than the code. Only the first line: PostgreSQL's
        # second line (DETAIL) can quote the values of a row.
        detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        hint = " (run `python -m loyalty db upgrade`)" if re.search("no such|does not exist", detail) else ""
        _err(f"database error: {type(exc).__name__}: {detail}{hint}")
        return EXIT_REFUSED
