"""Setting up: the database schema, demo data, and serving the tills' API."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from typing import Any

from loyalty import db, migrate
from loyalty.apps.cli.common import (
    EXIT_OK,
    command_group,
    int_in,
    local_time,
    optional_module,
    parse_day,
    progress_bar,
    table,
)
from loyalty.errors import Refused


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


def cmd_seed(a: argparse.Namespace) -> int:
    from loyalty.apps import demo  # only this command needs the generator

    if not db.run(demo.is_empty, readonly=True):
        if a.if_empty:
            print("the database already has stores: seed skipped")
            return EXIT_OK
        raise Refused("The database already has stores; seed fills only an empty database "
                      "(--if-empty skips it quietly).", code="database_not_empty")
    plan = demo.make_plan(a.members, a.seed, a.until, a.days)
    with progress_bar(len(plan.events), "seeding", "event") as bar:
        r = demo.load(plan, progress=bar.update)
    span = f"{local_time(plan.start)[:10]} .. {local_time(plan.end - timedelta(seconds=1))[:10]}"
    print(f"seeded {span} (seed {a.seed}) in {r.load_seconds:.1f} s")
    table(("what", "count"), [
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


def cmd_serve(a: argparse.Namespace) -> int:
    api = optional_module("loyalty.apps.api", "serve")
    if a.database_url:
        # Worker processes read the settings afresh from the environment.
        os.environ["LOYALTY_DATABASE_URL"] = a.database_url
    api.serve(a.host, a.port, workers=a.workers)
    return EXIT_OK


def add_db(sub: Any) -> None:
    dbg = command_group(sub, "db", "database schema")
    dbg.add_parser("upgrade", help="migrate the schema to the latest revision").set_defaults(
        func=cmd_db_upgrade, needs_schema=False)
    dbg.add_parser("current", help="show the schema revision").set_defaults(func=cmd_db_current, needs_schema=False)


def add_seed(sub: Any) -> None:
    s = sub.add_parser("seed", help="fill an empty database with deterministic demo data",
                       description="Stores, a catalogue and members with ~15 months of orders, through the services.")
    s.add_argument("--members", type=int_in(1, 100_000), default=2000, help="how many members (default 2000)")
    s.add_argument("--seed", type=int, default=42, help="random seed: same seed and --until, same data")
    s.add_argument("--until", type=parse_day, help="first day after the history (default today, Asia/Shanghai)")
    s.add_argument("--days", type=int_in(30, 3650), default=450, help="days of history (default 450)")
    s.add_argument("--if-empty", action="store_true", help="do nothing if the database already has stores")
    s.set_defaults(func=cmd_seed)


def add_serve(sub: Any) -> None:
    sv = sub.add_parser("serve", help="run the HTTP API for tills and the web shop")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int_in(1, 65535), default=8081)
    sv.add_argument("--workers", type=int_in(1, 64), default=1)
    sv.set_defaults(func=cmd_serve, needs_schema=False)
