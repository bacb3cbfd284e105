"""Engines, sessions and the transaction runner every caller uses.

SQLite is the embedded default: WAL, a busy timeout, foreign keys, and
``BEGIN IMMEDIATE`` for writing transactions so that concurrent writers queue
for the lock instead of failing on a read-to-write upgrade. PostgreSQL runs in
READ COMMITTED; services take row locks and use guarded updates.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import stat
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import event, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, create_engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, declarative_base, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.types import DateTime, TypeDecorator

from loyalty import telemetry
from loyalty.config import settings
from loyalty.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# The declarative base of every table; each domain package declares its own in models.py.
Base: Any = declarative_base()

# Naming convention so that Alembic migrations name constraints identically
# on SQLite (batch mode) and PostgreSQL.
Base.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware datetimes in Python, naive UTC in the database (same on SQLite and PostgreSQL)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def without_jit(s: Session) -> None:
    """Turn PostgreSQL's JIT compilation off for the rest of this transaction (a report's few big queries).

    Their estimated cost makes PostgreSQL compile them to machine code, and the compiling took
    longer than the query: 3.4 s of a 4.3 s journey report at 100,000 members (bench/staff_dashboard.py).
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET LOCAL jit = off"))


def plus_days(s: Session, col: Any, days: int) -> Any:
    """``col`` + ``days`` days in SQL: PostgreSQL adds an interval; SQLite's naive UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff``) is shifted by its date functions, keeping the microseconds."""
    if s.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%S", col, f"+{days} days").op("||")(func.substr(col, 20))
    return col + func.make_interval(0, 0, 0, days)


def add_first(s: Session, row: Any) -> bool:
    """Insert ``row`` unless a row with one of its unique keys got there first (another process racing
    this one): True when it was inserted; otherwise the session goes on as if it had not been added."""
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        return False
    return True


def insert_new(s: Session, model: Any, rows: list[dict[str, Any]], key: list[str], chunk: int = 500) -> int:
    """Insert ``rows``, leaving alone each one whose ``key`` columns match a row already there (inserted
    before, or by another process at the same time); returns how many were inserted."""
    ins = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert  # type: ignore[union-attr]
    total = 0
    for i in range(0, len(rows), chunk):
        res = s.execute(ins(model).values(rows[i:i + chunk]).on_conflict_do_nothing(index_elements=key))
        total += res.rowcount or 0
    return total


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def _owner_only_sqlite(path: str) -> None:
    """Create the SQLite file (and a missing folder) readable by its owner only.

    SQLite gives its -wal, -shm and -journal files the database file's mode,
    so members' data never sits in a file every user of the machine can read.
    A file left readable by an older version is tightened.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: warn, the database still works
            log.warning("cannot restrict the database file to its owner: %s", exc.strerror)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: the configured database) with the right setup."""
    url = url or settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0] if "///" in url else ""
        if path and path != ":memory:":
            _owner_only_sqlite(path)
        engine = create_engine(
            url,
            future=True,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=QueuePool,
            pool_size=kwargs.pop("pool_size", 20),
            max_overflow=kwargs.pop("max_overflow", 20),
            **kwargs,
        )
        _sqlite_setup(engine)
        return engine
    return create_engine(
        url,
        future=True,
        pool_pre_ping=True,
        pool_size=kwargs.pop("pool_size", 10),
        max_overflow=kwargs.pop("max_overflow", 30),
        **kwargs,
    )


_engine: Engine | None = None
_factory: sessionmaker | None = None
_ro_factory: sessionmaker | None = None


def configure(engine: Engine | None = None) -> Engine:
    """Set the engine every :func:`run` uses (default: from settings). Returns it."""
    global _engine, _factory, _ro_factory
    if _engine is not None and _engine is not engine:
        _engine.dispose()
    _engine = engine or make_engine()
    _factory = sessionmaker(bind=_engine, future=True, expire_on_commit=False)
    _ro_factory = sessionmaker(
        bind=_engine.execution_options(readonly=True), future=True, expire_on_commit=False
    )
    return _engine


def engine() -> Engine:
    """The configured engine, configuring from settings on first use."""
    if _engine is None:
        configure()
    assert _engine is not None
    return _engine


def session(readonly: bool = False) -> Session:
    """A new session on the configured engine (use as a context manager)."""
    engine()
    factory = _ro_factory if readonly else _factory
    assert factory is not None
    return factory()


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        # A concurrent twin inserted the same idempotency key first: re-running
        # finds its row and returns the first result.
        return True
    code = getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01"):  # serialization failure, deadlock
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


def run(fn: Callable[..., T], *args: Any, readonly: bool = False, attempts: int = 5, **kwargs: Any) -> T:
    """Run ``fn(session, *args, **kwargs)`` in one transaction, committing on success.

    Concurrency conflicts are retried with a short jittered back-off; a domain
    error rolls everything back and propagates; a database that cannot be
    reached becomes :class:`Unavailable`.
    """
    for attempt in range(1, attempts + 1):
        try:
            with session(readonly) as s, s.begin():
                return fn(s, *args, **kwargs)
        except DBAPIError as exc:
            if _retryable(exc) and attempt < attempts:
                telemetry.notify(telemetry.DB_RETRY)
                time.sleep(random.uniform(0.001, 0.02) * attempt)
                continue
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                log.error("database unavailable: %s", type(exc.orig).__name__)
                telemetry.notify(telemetry.DB_UNAVAILABLE)
                raise Unavailable("The database is unavailable, nothing was written.") from exc
            raise
    raise AssertionError("unreachable")


async def arun(fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
    """:func:`run` from async code, in a worker thread so the event loop never blocks."""
    return await asyncio.to_thread(functools.partial(run, fn, *args, readonly=readonly, **kwargs))
