"""What the staff app's browser tests share: a running staff app, logging in, where screenshots go."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.settings import load_console_settings
from bot.staff.app import CHART_JS, create_app
from bot.wechat.dev.local_server import LocalServer
from tests.support.servers import missing

# The closing note's folder of results (not committed); docs/screenshots/ keeps the chosen ones.
SHOTS = Path(__file__).resolve().parents[2] / "results" / "screenshots" / "staff"
PW = "correct horse battery"


@contextmanager
def staff_app(tmp_path: Path, name: str) -> Iterator[str]:
    """A staff app on a free port for the test's database; yields the page's address."""
    if not CHART_JS.exists():
        missing("the staff app's chart.js", "make staff-assets")
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


def logged_in(browser: Any, base: str, name: str, locale: str, size: tuple[int, int] = (1280, 900)) -> Any:
    """A new page of ``size`` in ``locale``, ``name`` logged in. Playwright waits by evaluating strings,
    which the page's CSP forbids: the context bypasses it."""
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}, locale=locale,
                               bypass_csp=True).new_page()
    login(page, base, name)
    return page
