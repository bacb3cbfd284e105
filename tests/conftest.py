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

_counter = itertools.count()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file migrated once; each test copies it."""
    path = str(tmp_path_factory.mktemp("tpl") / "template.db")
    e = db.make_engine(f"sqlite:///{path}")
    migrate.upgrade(e)
    e.dispose()
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    tpl = db.make_engine(server.base_url + "/postgres", isolation_level="AUTOCOMMIT")
    with tpl.connect() as c:
        c.execute(text("CREATE DATABASE loyalty_template"))
    tpl.dispose()
    e = db.make_engine(server.base_url + "/loyalty_template")
    migrate.upgrade(e)
    e.dispose()
    yield server
    server.stop()


def _pg_engine(server: PgServer) -> Engine:
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = db.make_engine(server.base_url + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name} TEMPLATE loyalty_template"))
    admin.dispose()
    return db.make_engine(server.base_url + "/" + name, pool_size=20, max_overflow=40)


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
    if request.param == "sqlite":
        e = _sqlite_engine(sqlite_template, tmp_path)
    else:
        e = _pg_engine(request.getfixturevalue("pg_server"))
    db.configure(e)
    yield e
    e.dispose()


@pytest.fixture
def sqlite_engine(sqlite_template: str, tmp_path: os.PathLike[str]) -> Iterator[Engine]:
    """The loyalty database on SQLite only, for tests whose backend does not matter."""
    e = _sqlite_engine(sqlite_template, tmp_path)
    db.configure(e)
    yield e
    e.dispose()
