"""The staff app in Chromium: per-role logins, filters, a chart's values, a refused campaign, a manager's store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.nlu_review import service as review
from loyalty.staff import service as staff
from tests.e2e.staff_kit import PW, SHOTS, logged_in, staff_app
from tests.loyalty.corekit import T0, counts
from tests.loyalty.test_reports import DAY, _fixture
from tests.loyalty.test_reports_funnel import RA1, RB2, funnel_visits
from tests.support.browser import chromium

pytestmark = pytest.mark.browser


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    with staff_app(tmp_path, "staff_browser") as url:
        _fixture()
        funnel_visits()
        db.run(review.record, text="你们几点关门", sender_id="web-1", channel="webchat", reason="fallback",
               intent="ask_hours", confidence=0.31, language="zh", now=T0)
        db.run(staff.create_staff, "mkt", PW, role="marketing", display_name="市场部")
        db.run(staff.create_staff, "mgr", PW, role="store_manager", store="RA1", display_name="甲店店长")
        yield url


def _range(page: Any) -> None:
    page.fill("#filters input[name=start]", (T0 - DAY).date().isoformat())
    page.fill("#filters input[name=end]", (T0 + 9 * DAY).date().isoformat())


def _chart_values(page: Any, name: str) -> list[Any]:
    # The chart is drawn just after its table: wait for it, then read it.
    page.wait_for_function(f"() => window.Chart && Chart.getChart(document.getElementById('chart-{name}'))")
    return page.evaluate(f"() => Chart.getChart(document.getElementById('chart-{name}')).data.datasets[0].data")


def _drawn(page: Any, name: str, labels: int) -> None:
    """Wait until the chart of the figure has ``labels`` labels (a previous scope's chart may still show)."""
    page.wait_for_function(f"() => {{ const c = window.Chart && "
                           f"Chart.getChart(document.getElementById('chart-{name}'));"
                           f" return c && c.data.labels.length === {labels}; }}")


def _cells(row: dict[str, Any]) -> list[str]:
    """A row as the page's table shows it: JavaScript writes 1.0 as "1", None as "–"."""
    return ["–" if v is None else str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
            for v in row.values()]


def _funnel_rows(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all("#figure-qr_funnel tbody tr",
                                     "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")


def test_marketing_reads_filters_and_runs_campaigns(base: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = logged_in(browser, base, "mkt", "zh-CN")
        _range(page)
        page.click("#filters button[type=submit]")
        _drawn(page, "new_members", 2)
        # One member joined on the first day, two on the second (the hand fixture).
        assert _chart_values(page, "new_members") == [1, 2]
        assert "所选时段内入会的会员数" in page.inner_text("#figure-new_members .definition")
        # The QR funnel: the hand-computed rows in the table, visitors in the chart, its definition beside.
        assert _funnel_rows(page) == [_cells(RA1), _cells(RB2)]
        assert _chart_values(page, "qr_funnel") == [RA1["visitors"], RB2["visitors"]]
        assert "关注率＝关注／扫码" in page.inner_text("#figure-qr_funnel .definition")
        assert page.get_attribute("#figure-qr_funnel a.csv", "href").startswith("api/dashboard/qr_funnel.csv?")
        page.screenshot(path=str(SHOTS / "dashboard.png"))
        page.select_option("#filters select[name=store]", "RB2")
        page.click("#filters button[type=submit]")
        page.wait_for_function("() => document.querySelectorAll('#figure-new_members tbody tr').length === 1")
        _drawn(page, "new_members", 1)
        assert _chart_values(page, "new_members") == [1]

        page.click("#tabs button[data-view=campaigns]")
        before = counts()
        form = "#campaign-form"
        for name, value in (("code", "WEB30"), ("name_zh", "满200减30"), ("name_en", "30 off 200"),
                            ("threshold", "200"), ("discount", "30"), ("total_stock", "-5")):
            page.fill(f"{form} input[name={name}]", value)
        page.click(f"{form} button[type=submit]")
        page.wait_for_function("() => document.getElementById('campaign-error').textContent.length > 0")
        assert "total_stock" in page.inner_text("#campaign-error")
        assert counts() == before
        page.fill(f"{form} input[name=total_stock]", "100")
        page.fill(f"{form} input[name=claim_start]", "2026-03-10")
        page.fill(f"{form} input[name=claim_end]", "2026-03-01")
        page.click(f"{form} button[type=submit]")
        page.wait_for_function("() => document.getElementById('campaign-error').textContent.includes('claim_end')")
        assert counts() == before
        page.fill(f"{form} input[name=claim_end]", "2026-12-31")
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector("#campaign-table td:text('WEB30')")
        page.screenshot(path=str(SHOTS / "campaigns.png"))

        page.click("#tabs button[data-view=stores]")
        page.wait_for_selector("#store-table td:text('RB2')")
        page.screenshot(path=str(SHOTS / "stores.png"))
        sheet = page.request.get(base + "api/stores/RA1/qr-sheet.png")
        assert sheet.status == 200 and sheet.body()[:8] == b"\x89PNG\r\n\x1a\n"

        page.click("#tabs button[data-view=review]")
        page.wait_for_selector("#review-table td:text('你们几点关门')")
        page.screenshot(path=str(SHOTS / "review.png"))


def test_a_store_manager_sees_only_their_store(base: str) -> None:
    with chromium() as browser:
        page = logged_in(browser, base, "mgr", "en-US", (820, 1180))
        page.click("#lang")
        _range(page)
        page.click("#filters button[type=submit]")
        _drawn(page, "new_members", 2)
        assert page.eval_on_selector_all("#filters select[name=store] option", "os => os.map(o => o.value)") == ["RA1"]
        assert _chart_values(page, "new_members") == [1, 1]
        assert _funnel_rows(page) == [_cells(RA1)]
        assert page.is_hidden("#tabs button[data-view=campaigns]")
        page.screenshot(path=str(SHOTS / "dashboard_store_manager_tablet.png"))
        # Asking the JSON endpoint directly for another store, with the page's own session.
        got = page.evaluate("""async () => { const r = await fetch('api/dashboard?store=RB2');
                               return [r.status, await r.text()]; }""")
        assert got[0] == 403 and json.loads(got[1])["error"] == "other_store"
