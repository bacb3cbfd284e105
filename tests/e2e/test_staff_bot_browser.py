"""The bot's numbers in Chromium: conversations contained and handed off per day, the bot table's figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bot.settings import load_console_settings
from bot.staff.app import CHART_JS, create_app
from bot.wechat.dev.local_server import LocalServer
from loyalty import db
from loyalty.staff import service as staff
from tests.loyalty.corekit import T0
from tests.loyalty.test_conversations import talk
from tests.loyalty.test_reports import DAY
from tests.support.browser import chromium

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "results" / "screenshots" / "staff"  # not committed
PW = "correct horse battery"


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    if not CHART_JS.exists():
        pytest.skip("run 'make staff-assets' for the charts")
    cfg = load_console_settings({}, secret="staff-browser-secret-0123456789", var_dir=str(tmp_path))
    srv = LocalServer(create_app(cfg, name="staff_bot_browser")).start()
    talk()
    db.run(staff.create_staff, "sup", PW, role="supervisor", display_name="主管")
    yield srv.url + "/staff/"
    srv.stop()


def test_the_bot_section_shows_conversations_and_containment(base: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", bypass_csp=True).new_page()
        page.goto(base)
        page.fill("#login input[name=username]", "sup")
        page.fill("#login input[name=password]", PW)
        page.click("#login button[type=submit]")
        page.wait_for_selector("#figure-new_members table", state="attached")
        page.click("#lang")  # English
        page.fill("#filters input[name=start]", (T0 - DAY).date().isoformat())
        page.fill("#filters input[name=end]", (T0 + 9 * DAY).date().isoformat())
        page.click("#filters button[type=submit]")
        page.wait_for_function("() => { const c = window.Chart && Chart.getChart("
                               "document.getElementById('chart-conversations')); return c && c.data.labels.length; }")
        sets = page.evaluate("() => Chart.getChart(document.getElementById('chart-conversations')).data.datasets"
                             ".map((d) => d.data)")
        # Day 0: A contained, B handed off; day 1: C and E contained, D handed off.
        assert sets == [[1, 2], [1, 1]]
        cells = page.eval_on_selector_all("#figure-bot tbody tr", "trs => Object.fromEntries(trs.map("
                                          "(tr) => [tr.children[0].textContent, tr.children[1].textContent]))")
        assert (cells["conversations"], cells["containment"], cells["fallback_rate"]) == ("5", "0.6", "0.3333")
        assert cells["handoff_rate_request"] == "0.2"
        assert "containment" in page.inner_text("#figure-bot .definition")
        page.locator("#figure-conversations").screenshot(path=str(SHOTS / "conversations.png"))
        page.locator("#figure-bot").screenshot(path=str(SHOTS / "bot.png"))
