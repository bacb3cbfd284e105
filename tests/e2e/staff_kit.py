"""What the staff app's browser tests share: a running staff app, logging in, where screenshots go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.settings import load_console_settings
from bot.staff.app import CHART_JS, create_app
from bot.wechat.dev.local_server import LocalServer

# The closing note's folder of results (not committed); docs/screenshots/ keeps the chosen ones.
SHOTS = Path(__file__).resolve().parents[2] / "results" / "screenshots" / "staff"
PW = "correct horse battery"


@contextmanager
def staff_app(tmp_path: Path, name: str) -> Iterator[str]:
    """A staff app on a free port for the test's database; yields the page's address."""
    if not CHART_JS.exists():
        pytest.skip("run 'make staff-assets' for the charts")
    cfg = load_console_settings({}, secret="staff-browser-secret-0123456789", var_dir=str(tmp_path))
    srv = LocalServer(create_app(cfg, name=name)).start()
    try:
        yield srv.url + "/staff/"
    finally:
        srv.stop()


def login(page: Any, base: str, name: str) -> None:
    """Log ``name`` in with the test password and wait for the dashboard's first figure."""
    page.goto(base)
    page.fill("#login input[name=username]", name)
    page.fill("#login input[name=password]", PW)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#figure-new_members table", state="attached")
