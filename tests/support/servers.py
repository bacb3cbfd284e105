"""Throwaway PostgreSQL and Redis servers for tests, on free loopback ports.

In CI (``CI`` set) a missing server binary is an error; locally the tests
that need it skip with a message saying what to install.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never one this process was given before.

    The kernel may hand the same ephemeral port out again as soon as the probe
    socket closes, so two calls in a row could name one port for two servers.
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def missing(what: str, install: str) -> None:
    """Fail in CI, skip locally, saying what is missing."""
    msg = f"{what} is not installed ({install})"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI must provide it", pytrace=False)
    pytest.skip(msg)


def _pg_bin(name: str) -> str | None:
    # Debian keeps the server tools out of PATH, in a folder per major version.
    found = shutil.which(name)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else found


@dataclass
class PgServer:
    """A PostgreSQL cluster in a temporary folder, run as the ``postgres`` user when we are root."""

    port: int
    datadir: str
    proc_user: str | None

    @property
    def base_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}"

    def stop(self) -> None:
        _run_as(self.proc_user, [_pg_bin("pg_ctl") or "pg_ctl", "-D", self.datadir, "-m", "immediate", "stop"])
        shutil.rmtree(os.path.dirname(self.datadir), ignore_errors=True)


def _run_as(user: str | None, cmd: list[str]) -> subprocess.CompletedProcess[str]:
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def start_postgres() -> PgServer:
    """Start a throwaway PostgreSQL server, or skip/fail when PostgreSQL is not installed."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl or not os.path.exists(os.path.join(os.path.dirname(initdb), "postgres")):
        missing("PostgreSQL server", "apt-get install postgresql")
    user = "postgres" if os.geteuid() == 0 else None
    root = tempfile.mkdtemp(prefix="loyalty-pg-")
    datadir = os.path.join(root, "data")
    os.chmod(root, 0o777)
    if user:
        shutil.chown(root, user)
    res = _run_as(user, [initdb, "-D", datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
    if res.returncode != 0:
        raise RuntimeError(f"initdb failed: {res.stderr[-500:]}")
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    res = _run_as(user, [pg_ctl, "-D", datadir, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start"])
    if res.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {res.stderr[-500:]}")
    return PgServer(port, datadir, user)


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_redis() -> RedisServer:
    """Start a throwaway Redis server, or skip/fail when Redis is not installed."""
    exe = shutil.which("redis-server")
    if not exe:
        missing("redis-server", "apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return RedisServer(port, proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")
