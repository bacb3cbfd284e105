"""The dashboard in Chromium says which figures come from the pre-aggregated tables, and as of when."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.reports import rollup
from loyalty.staff import service as staff
from tests.e2e.staff_kit import PW, SHOTS, logged_in, staff_app
from tests.loyalty.corekit import T0, buy
from tests.loyalty.test_reports import DAY, _fixture
from tests.support.browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    with staff_app(tmp_path, "staff_rollup_browser") as url:
        f = _fixture()  # 3 orders of 2 buyers in the range below
        db.run(rollup.refresh)
        buy(f["m3"], "40.00", T0 + 3 * DAY, store_code="RB2")  # after the rebuild: not in the tables yet
        db.run(staff.create_staff, "mkt", PW, role="marketing", display_name="市场部")
        yield url


def _sales_cells(page: Any) -> list[str]:
    return page.eval_on_selector_all("#figure-sales_by_tier tbody tr:first-child td",
                                     "tds => tds.map(td => td.textContent)")


def test_rolled_up_figures_say_as_of_when(base: str) -> None:
    with chromium() as browser:
        page = logged_in(browser, base, "mkt", "zh-CN")
        page.fill("#filters input[name=start]", (T0 - DAY).date().isoformat())
        page.fill("#filters input[name=end]", (T0 + 9 * DAY).date().isoformat())
        page.click("#filters button[type=submit]")
        # The default range (the last 30 days) holds no order: wait for this range's row.
        page.wait_for_selector("#figure-sales_by_tier tbody tr td")
        page.wait_for_selector("#figure-sales_by_tier p.rolled")
        # The tables' figure: 3 orders of 2 buyers (the fourth order came after the rebuild).
        cells = _sales_cells(page)
        assert cells[1:3] == ["3", "2"], cells
        note = page.inner_text("#figure-sales_by_tier p.rolled")
        assert note.startswith("预汇总数据，截至") and "每 10 分钟更新" in note
        assert "预汇总数据" in page.inner_text("#freshness")
        assert page.query_selector("#figure-new_members p.rolled") is None  # computed live: no note
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "dashboard_rolled_up.png"))
        # The next rebuild takes the fourth order in.
        db.run(rollup.refresh)
        page.click("#filters button[type=submit]")
        page.wait_for_function("() => document.querySelector('#figure-sales_by_tier tbody td:nth-child(2)')"
                               "?.textContent === '4'")
        assert _sales_cells(page)[1:3] == ["4", "2"]
