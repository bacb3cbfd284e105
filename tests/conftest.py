"""Database fixtures: a migrated SQLite file and a migrated database on a real PostgreSQL server."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from loyalty import config, db, migrate
from tests.support.servers import PgServer, start_postgres
from tests.support.sms import fake_sms, fake_sms_server  # noqa: F401 - fixtures for every test folder

_counter = itertools.count()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file migrated once; each test copies it."""
    path = str(tmp_path_factory.mktemp("tpl") / "template.db")
    e = db.make_engine(f"sqlite:///{path}")
    migrate.upgrade(e)
    e.dispose()
    return path


_admins: dict[int, Engine] = {}


def _admin(server: PgServer) -> Engine:
    """An AUTOCOMMIT engine on the server's ``postgres`` database (CREATE/DROP DATABASE), one per server."""
    if server.port not in _admins:
        _admins[server.port] = db.make_engine(server.base_url + "/postgres", isolation_level="AUTOCOMMIT")
    return _admins[server.port]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    with _admin(server).connect() as c:
        c.execute(text("CREATE DATABASE loyalty_template"))
    e = db.make_engine(server.base_url + "/loyalty_template")
    migrate.upgrade(e)
    e.dispose()
    yield server
    _admins.pop(server.port).dispose()
    server.stop()


def _pg_engine(server: PgServer) -> tuple[Engine, str]:
    """A fresh database copied from the migrated template, and its name."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    # FILE_COPY copies the template's files instead of WAL-logging every block: quicker for
    # a small database, and it leaves little WAL for the server's shutdown to deal with.
    with _admin(server).connect() as c:
        c.execute(text(f"CREATE DATABASE {name} TEMPLATE loyalty_template STRATEGY FILE_COPY"))
    return db.make_engine(server.base_url + "/" + name, pool_size=20, max_overflow=40), name


def _drop_pg(server: PgServer, name: str) -> None:
    # FORCE: a connection a test leaked (a thread still running) must not keep the database.
    with _admin(server).connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _sqlite_engine(template: str, tmp_path: os.PathLike[str]) -> Engine:
    path = os.path.join(tmp_path, "loyalty.db")
    shutil.copy(template, path)
    return db.make_engine(f"sqlite:///{path}")


@pytest.fixture(autouse=True)
def _default_settings() -> Iterator[None]:
    """Every test starts from the default settings."""
    config.use(config.Settings())
    yield
    config.use(None)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, sqlite_template: str, tmp_path: os.PathLike[str]) -> Iterator[Engine]:
    """The loyalty database on each backend, configured for :func:`loyalty.db.run`."""
    server: PgServer | None = None
    name = ""
    if request.param == "sqlite":
        e = _sqlite_engine(sqlite_template, tmp_path)
    else:
        server = request.getfixturevalue("pg_server")
        e, name = _pg_engine(server)
    db.configure(e)
    yield e
    e.dispose()
    if server is not None:
        _drop_pg(server, name)


@pytest.fixture
def sqlite_engine(sqlite_template: str, tmp_path: os.PathLike[str]) -> Iterator[Engine]:
    """The loyalty database on SQLite only, for tests whose backend does not matter."""
    e = _sqlite_engine(sqlite_template, tmp_path)
    db.configure(e)
    yield e
    e.dispose()
