"""Journeys and broadcasts in Chromium: the section's chart and table show the hand-computed figures; a draft is
previewed (audience, control, the rendered message) without being saved, then saved; a manager has no such tab."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.db import utcnow
from loyalty.outreach import outcomes
from loyalty.outreach import service as outreach
from loyalty.staff import service as staff
from tests.e2e.staff_kit import PW, SHOTS, logged_in, staff_app
from tests.loyalty.corekit import T0, counts
from tests.loyalty.test_reports_outreach import _welcome_fixture
from tests.support.browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    with staff_app(tmp_path, "staff_journeys_browser") as url:
        _welcome_fixture()
        db.run(staff.create_staff, "mkt", PW, role="marketing", display_name="市场部")
        db.run(staff.create_staff, "mgr", PW, role="store_manager", store="RA1", display_name="甲店店长")
        yield url


def _cell(page: Any, journey: str, column: str) -> str:
    return str(page.evaluate("""([journey, column]) => {
        const t = document.getElementById('journey-table');
        const cols = [...t.querySelectorAll('thead th')].map((th) => th.textContent);
        const row = [...t.querySelectorAll('tbody tr')].find((tr) => tr.children[1].textContent === journey);
        return row.children[cols.indexOf(column)].textContent; }""", [journey, column]))


def test_the_journeys_section_shows_the_hand_figures_and_previews_a_broadcast(base: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = logged_in(browser, base, "mkt", "zh-CN", (1280, 1000))
        page.click("#tabs button[data-view=journeys]")
        page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-journeys'))")
        # welcome: treatment 1 of 3 converted, control 1 of 2 (tests/loyalty/test_reports_outreach.py).
        labels = page.evaluate("() => Chart.getChart(document.getElementById('chart-journeys')).data.labels")
        sets = page.evaluate("() => Chart.getChart(document.getElementById('chart-journeys')).data.datasets"
                             ".map((d) => d.data)")
        i = labels.index("welcome")
        assert (sets[0][i], sets[1][i]) == (0.3333, 0.5)
        assert (_cell(page, "welcome", "treatment"), _cell(page, "welcome", "control")) == ("3", "2")
        assert _cell(page, "welcome", "conversion_treatment") == "33.3%"
        assert _cell(page, "welcome", "coupon_cost_fen") == "1000"
        assert "对照组" in page.inner_text("#journey-definition")
        assert page.get_attribute("#journey-csv", "href") == "api/journeys.csv"
        assert page.inner_text("#journey-outcomes") == "结果尚未冻结：全部实时计算"

        db.run(outcomes.freeze_outcomes, T0 + timedelta(days=30))  # the scheduler's job: every window closed
        page.click("#journey-table tbody tr:has(td:text-is('welcome')) button[data-act=pause]")
        page.wait_for_function("() => [...document.querySelectorAll('#journey-table td')]"
                               ".some((td) => td.textContent === 'paused')")
        assert db.run(outreach.paused, "welcome")
        # The same figures, now summed from the frozen outcomes; the line under the table says since when.
        assert (_cell(page, "welcome", "treatment"), _cell(page, "welcome", "conversion_treatment")) == ("3", "33.3%")
        assert page.inner_text("#journey-outcomes").startswith("已结束归因窗口的结果冻结于")

        form = "#broadcast-form"
        at = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT12:00")
        page.fill(f"{form} input[name=code]", "RA1DAY")
        page.fill(f"{form} input[name=send_at]", at)
        page.fill(f"{form} textarea[name=text_zh]", "甲店会员日，全场满100减20")
        page.fill(f"{form} textarea[name=text_en]", "Store A day: 20 off 100")
        page.select_option(f"{form} select[name=store]", "RA1")
        before = counts()
        page.click("#broadcast-preview")
        page.wait_for_selector("#journey-preview:not([hidden]) #preview-zh")
        assert page.inner_text("#preview-zh") == "甲店会员日，全场满100减20"
        assert page.inner_text("#preview-en") == "Store A day: 20 off 100"
        # Store RA1's active members: m1, m2 and the four joined in the fixture.
        assert page.inner_text("#journey-preview dd[data-k=p_audience]") == "6"
        assert counts() == before
        page.screenshot(path=str(SHOTS / "journeys.png"), full_page=True)
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector("#journey-table td:text-is('broadcast:RA1DAY')")
        assert "broadcast:RA1DAY" in page.inner_text("#broadcast-status")


def test_a_store_manager_has_no_journeys_tab(base: str) -> None:
    with chromium() as browser:
        page = logged_in(browser, base, "mgr", "en-US", (820, 1180))
        assert page.is_hidden("#tabs button[data-view=journeys]")
        got = page.evaluate("async () => { const r = await fetch('api/journeys'); return [r.status, await r.json()]; }")
        assert got[0] == 403 and got[1]["error"] == "not_allowed"
