"""Editing a journey's copy in Chromium: a placeholder nobody fills is refused beside the form and nothing is
saved; the preview shows the message as a member reads it; saving marks the step edited and the next send uses it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.outreach import service as outreach
from loyalty.staff import service as staff
from tests.e2e.staff_kit import PW, SHOTS, logged_in, staff_app
from tests.loyalty.corekit import counts, join
from tests.support.browser import chromium

pytestmark = pytest.mark.browser
STEP = "#journey-copy form[data-step=d30]"


@pytest.fixture
def base(sqlite_engine: Engine, tmp_path: Any) -> Iterator[str]:
    with staff_app(tmp_path, "staff_copy_browser") as url:
        join(channel="wechat", external_id="o-copy-browser")
        db.run(staff.create_staff, "mkt", PW, role="marketing", display_name="市场部")
        yield url


def test_marketing_edits_a_steps_copy_with_a_preview(base: str) -> None:
    with chromium() as browser:
        page = logged_in(browser, base, "mkt", "zh-CN")
        page.click("#tabs button[data-view=journeys]")
        page.click("#journey-table tr:has(td:text-is('points_expiring')) button[data-act=copy]")
        page.wait_for_selector(STEP)
        before = counts()
        page.fill(f"{STEP} textarea[name=text_zh]", "您还有{balance}积分")
        page.click(f"{STEP} button[data-act=copy-save]")
        page.wait_for_function("() => document.querySelector('[data-step-error=d30]').textContent.length > 0")
        assert "{balance}" in page.inner_text(f"{STEP} [data-step-error=d30]")
        assert counts() == before
        page.fill(f"{STEP} textarea[name=text_zh]", "{points}积分将于{date}到期，快来换券")
        page.click(f"{STEP} button[data-act=copy-preview]")
        page.wait_for_selector(f"{STEP} [data-step-preview=d30] p[lang=zh]")
        assert page.inner_text(f"{STEP} [data-step-preview=d30] p[lang=zh]") == "500积分将于2026-12-31到期，快来换券"
        assert counts() == before  # a preview saves nothing
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "journey_copy.png"), full_page=True)
        page.click(f"{STEP} button[data-act=copy-save]")
        page.wait_for_selector(f"{STEP} button[data-act=copy-reset]")
        assert "已修改" in page.inner_text(f"{STEP} h4")
        saved = db.run(outreach.step_for, "points_expiring", "d30", readonly=True)
        assert saved.zh == "{points}积分将于{date}到期，快来换券"
