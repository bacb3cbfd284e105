"""Generated secrets and everything the launched processes create in var/ are their owner's alone."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import launcher
from bot.files import secure_var
from bot.settings import dev_secret

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_dev_secret_is_created_owner_only(tmp_path: Path, usual_umask: None) -> None:
    var = tmp_path / "var"
    secret = dev_secret(str(var), "webchat.secret")
    assert len(secret) == 64 and dev_secret(str(var), "webchat.secret") == secret  # created once
    assert mode(var / "webchat.secret") == 0o600
    assert mode(var) == 0o700


def test_secure_var_tightens_what_an_older_version_left(tmp_path: Path, usual_umask: None) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    for name in ("tracker.db", "tracker.db-wal", "loyalty.db-shm", "console.secret", "notes.txt"):
        (var / name).write_text("x")
        os.chmod(var / name, 0o644)
    secure_var(var)
    assert mode(var) == 0o700
    assert {p.name: mode(p) for p in var.iterdir()} == {
        "tracker.db": 0o600, "tracker.db-wal": 0o600, "loyalty.db-shm": 0o600, "console.secret": 0o600,
        "notes.txt": 0o644,  # not a database or a secret: left alone
    }


def test_launched_processes_create_owner_only_files(tmp_path: Path) -> None:
    """What the launcher sets up holds for files other libraries create: Rasa's tracker.db is opened by SQLite."""
    var = tmp_path / "var"
    script = (
        "import os, sqlite3, sys\n"
        "from pathlib import Path\n"
        "from bot.files import private_files\n"
        "os.umask(0o022)\n"
        "private_files(Path(sys.argv[1]))\n"
        "c = sqlite3.connect(os.path.join(sys.argv[1], 'tracker.db'))\n"
        "c.execute('PRAGMA journal_mode=WAL'); c.execute('CREATE TABLE events (x)'); c.commit()\n"
        "open(os.path.join(sys.argv[1], 'credentials.yml'), 'w').close()\n"
        # While the connection is open: SQLite removes -wal and -shm when the last one closes.
        "print({p: oct(os.stat(os.path.join(sys.argv[1], p)).st_mode & 0o777) for p in os.listdir(sys.argv[1])})\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(var)], cwd=ROOT, check=True, timeout=60,
                          capture_output=True, text=True)
    assert mode(var) == 0o700
    assert ast.literal_eval(done.stdout) == {
        name: "0o600" for name in ("tracker.db", "tracker.db-wal", "tracker.db-shm", "credentials.yml")
    }


def test_launcher_sets_it_up_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usual_umask: None
) -> None:
    (tmp_path / "credentials.yml").write_text("bot.webchat.channel.WebchatInput: {}\n")
    (tmp_path / "var").mkdir(mode=0o755)
    monkeypatch.setattr(launcher, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)  # main() changes into ROOT; this restores the folder afterwards
    monkeypatch.delenv("WECHAT_TOKEN", raising=False)
    monkeypatch.delenv("LOYALTY_VAR_DIR", raising=False)
    seen: dict[str, Any] = {}

    def first_process(cmd: list[str], *args: Any, **kwargs: Any) -> None:
        seen["umask"] = os.umask(0o077)
        seen["var"] = mode(tmp_path / "var")
        raise KeyboardInterrupt  # stop main() before anything runs

    monkeypatch.setattr(launcher.subprocess, "Popen", first_process)
    monkeypatch.setattr(launcher.signal, "signal", lambda *_: None)  # keep pytest's own SIGTERM handling
    assert launcher.main([]) == 0
    assert seen == {"umask": 0o077, "var": 0o700}
