"""The bot's numbers in Chromium: conversations contained and handed off per day, the bot table's figures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.conversations import service as conversations
from loyalty.staff import service as staff
from tests.e2e.staff_kit import PW, SHOTS, logged_in, staff_app
from tests.loyalty.corekit import T0
from tests.loyalty.test_conversations import talk
from tests.loyalty.test_reports import DAY
from tests.support.browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    with staff_app(tmp_path, "staff_bot_browser") as url:
        talk()
        for sender, channel, score in (("o-1", "wechat", 5), ("v-2", "webchat", 3)):  # scores of the bot
            db.run(conversations.rate_bot, sender, channel, score, session_started_at=T0, now=T0 + DAY)
        db.run(staff.create_staff, "sup", PW, role="supervisor", display_name="主管")
        yield url


def test_the_bot_section_shows_conversations_and_containment(base: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = logged_in(browser, base, "sup", "en-US")
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
        assert (cells["rated"], cells["bot_rated"], cells["bot_satisfaction"]) == ("0", "2", "4")
        assert "bot satisfaction" in page.inner_text("#figure-bot .definition")
        assert "containment" in page.inner_text("#figure-bot .definition")
        page.locator("#figure-conversations").screenshot(path=str(SHOTS / "conversations.png"))
        page.locator("#figure-bot").screenshot(path=str(SHOTS / "bot.png"))
