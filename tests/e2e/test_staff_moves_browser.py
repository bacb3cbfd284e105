"""Segment moves on the staff page in Chromium: the bars, the shaded matrix, zh and en, a manager's store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.staff import service as staff
from tests.e2e.staff_kit import PW, SHOTS, logged_in, staff_app
from tests.e2e.test_staff_browser import _range
from tests.loyalty.test_reports import _fixture
from tests.loyalty.test_segment_moves import _add_moves
from tests.support.browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    with staff_app(tmp_path, "staff_moves_browser") as url:
        _add_moves(_fixture())
        db.run(staff.create_staff, "mkt", PW, role="marketing", display_name="市场部")
        db.run(staff.create_staff, "mgr", PW, role="store_manager", store="RA1", display_name="甲店店长")
        yield url


def _bars(page: Any, name: str, first: int) -> list[list[int]]:
    """The chart's series once its first series adds up to ``first`` (the previous scope's chart may still show)."""
    page.wait_for_function(f"() => {{ const c = window.Chart && "
                           f"Chart.getChart(document.getElementById('chart-{name}'));"
                           f" return c && c.data.datasets[0].data.reduce((a, b) => a + b, 0) === {first}; }}")
    return page.evaluate(f"() => Chart.getChart(document.getElementById('chart-{name}')).data.datasets"
                         ".map((d) => d.data)")


def _matrix(page: Any, name: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Non-empty cells of the figure's matrix: (from, to) -> (number, shade class)."""
    cells = page.eval_on_selector_all(
        f"#figure-{name} table.matrix td",
        "tds => tds.map((td) => [td.dataset.from, td.dataset.to, td.textContent, td.className])")
    return {(f, t): (n, c.split()[-1]) for f, t, n, c in cells if n not in ("", "0")}


def test_moves_read_at_a_glance_in_both_languages(base: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = logged_in(browser, base, "mkt", "zh-CN", (1280, 1400))
        _range(page)
        page.click("#filters button[type=submit]")
        page.wait_for_selector("#figure-segment_moves_lifecycle table.matrix")
        # new, active, dormant, churned: first assignments, moved in, moved out (drawn downwards).
        assert _bars(page, "segment_moves_lifecycle", 3) == [[3, 0, 0, 0], [0, 2, 1, 0], [-2, -1, 0, 0]]
        assert _matrix(page, "segment_moves_lifecycle") == {
            ("", "new"): ("3", "shade-4"), ("new", "active"): ("2", "shade-3"), ("active", "dormant"): ("1", "shade-2")}
        assert page.inner_text("#figure-segment_moves_lifecycle h3") == "生命周期阶段迁移"
        assert "首次分配" in page.inner_text("#figure-segment_moves_rfm .definition")
        # The cards follow the segment sizes, lifecycle first.
        order = page.eval_on_selector_all("#figures > .figure", "fs => fs.map((f) => f.id)")
        i = order.index("figure-segments")
        assert order[i + 1:i + 3] == ["figure-segment_moves_lifecycle", "figure-segment_moves_rfm"]
        page.locator("#figure-segment_moves_lifecycle").screenshot(path=str(SHOTS / "segment_moves_zh.png"))
        page.click("#lang")
        page.wait_for_function("() => document.querySelector('#figure-segment_moves_rfm h3')"
                               ".textContent === 'RFM segment moves'")
        assert "(first)" in page.inner_text("#figure-segment_moves_rfm table.matrix")
        assert page.get_attribute("#figure-segment_moves_rfm a.csv >> nth=1", "href").startswith(
            "api/dashboard/segment_moves_rfm_matrix.csv?")
        page.locator("#figure-segment_moves_rfm").screenshot(path=str(SHOTS / "segment_moves_en.png"))


def test_a_store_manager_sees_their_stores_moves(base: str) -> None:
    with chromium() as browser:
        page = logged_in(browser, base, "mgr", "en-US", (820, 1180))
        _range(page)
        page.click("#filters button[type=submit]")
        page.wait_for_selector("#figure-segment_moves_lifecycle table.matrix")
        assert _bars(page, "segment_moves_lifecycle", 2) == [[2, 0, 0, 0], [0, 1, 1, 0], [-1, -1, 0, 0]]
