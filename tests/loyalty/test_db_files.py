"""The SQLite loyalty database and its -wal/-shm files are readable by their owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from loyalty import db


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most shells give (022): files would be world-readable unless created otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_database_and_its_wal_files_are_owner_only(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "var" / "loyalty.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as c:  # a write in WAL mode creates -wal and -shm
        c.execute(text("CREATE TABLE t (x INTEGER)"))
        c.execute(text("INSERT INTO t VALUES (1)"))
    files = [path, path.with_name("loyalty.db-wal"), path.with_name("loyalty.db-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert mode(path.parent) == 0o700  # the folder it created
    engine.dispose()


def test_database_left_readable_by_an_older_version_is_tightened(tmp_path: Path, usual_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    path = shared / "loyalty.db"
    path.touch(mode=0o644)
    engine = db.make_engine(f"sqlite:///{path}")
    assert mode(path) == 0o600
    assert mode(shared) == 0o755  # a folder it did not create is left as it was
    engine.dispose()
