"""Staff command line: ``python -m loyalty <command> ...`` (``--help`` on any command).

Exit codes: 0 done; 1 refused by a business rule, the database not ready or
unavailable, or an import that rejected some rows; 2 bad input (the message
names it, nothing was written). A :class:`LoyaltyError` prints its code and
message. Times without a zone are Asia/Shanghai, the shops' time.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Sequence

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from loyalty import config, db
from loyalty.apps.cli import access, campaigns, jobs, outreach, review, setup, staff
from loyalty.apps.cli import orders as order_import
from loyalty.apps.cli.common import EXIT_BAD_INPUT, EXIT_REFUSED, NotReady, UsageError, err, require_schema
from loyalty.errors import InvalidInput, LoyaltyError, NotFound

# ---------------------------------------------------------------------------
# Argument types: each raises ArgumentTypeError, so argparse names the flag
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# db
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# seed
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# campaign
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# points, tiers, gifts
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# orders import
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# apikey, serve
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# agent (console accounts for the human takeover)
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    p = argparse.ArgumentParser(prog="python -m loyalty", description="Loyalty core: staff commands.")
    p.add_argument("--database-url", metavar="URL",
                   help="database to use instead of LOYALTY_DATABASE_URL (e.g. sqlite:///var/loyalty.db)")
    p.set_defaults(needs_schema=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="command")
    for add in (setup.add_db, setup.add_seed, campaigns.add_campaign, jobs.add_points, jobs.add_tiers,
                jobs.add_recommender, jobs.add_segments, jobs.add_reports, campaigns.add_gifts, order_import.add_orders,
                access.add_apikey, access.add_agent, staff.add_staff, review.add_review, outreach.add_journey,
                outreach.add_broadcast, setup.add_serve):
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
            require_schema()
        return int(a.func(a))
    except UsageError as exc:
        err(str(exc))
        return EXIT_BAD_INPUT
    except (InvalidInput, NotFound) as exc:
        err(f"{exc.code}: {exc.message}")
        return EXIT_BAD_INPUT
    except LoyaltyError as exc:
        err(f"{exc.code}: {exc.message}")
        return EXIT_REFUSED
    except NotReady as exc:
        err(str(exc))
        return EXIT_REFUSED
    except SQLAlchemyError as exc:
        # Unreachable, or a schema older than the code. Only the first line: PostgreSQL's
        # second line (DETAIL) can quote the values of a row.
        detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        hint = " (run `python -m loyalty db upgrade`)" if re.search("no such|does not exist", detail) else ""
        err(f"database error: {type(exc).__name__}: {detail}{hint}")
        return EXIT_REFUSED
