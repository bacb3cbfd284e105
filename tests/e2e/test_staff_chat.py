"""A campaign made in the staff app's page is offered and claimed in the web chat of the running assistant."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from bot.settings import load_console_settings
from bot.staff.app import CHART_JS, create_app
from bot.wechat.dev.local_server import LocalServer
from loyalty import db
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.membership import service as membership
from loyalty.staff import service as staff
from tests.support.browser import chromium
from tests.support.stack import Stack

pytestmark = pytest.mark.browser
PW = "correct horse battery"


def test_a_campaign_made_in_the_page_is_claimed_in_chat(stack: Stack, tmp_path: Any) -> None:
    if not CHART_JS.exists():
        pytest.skip("run 'make staff-assets' for the charts")
    db.run(staff.create_staff, "chatmkt", PW, role="marketing")
    cfg = load_console_settings({}, secret="staff-chat-secret-0123456789", var_dir=str(tmp_path))
    srv = LocalServer(create_app(cfg, name="staff_chat")).start()
    try:
        with chromium() as browser:
            page = browser.new_context(locale="zh-CN").new_page()
            page.goto(srv.url + "/staff/")
            page.fill("#login input[name=username]", "chatmkt")
            page.fill("#login input[name=password]", PW)
            page.click("#login button[type=submit]")
            page.click("#tabs button[data-view=campaigns]")
            for name, value in (("code", "STAFF50"), ("name_zh", "店庆满300减50"), ("name_en", "50 off 300"),
                                ("threshold", "300"), ("discount", "50"), ("total_stock", "10")):
                page.fill(f"#campaign-form input[name={name}]", value)
            page.click("#campaign-form button[type=submit]")
            page.wait_for_selector("#campaign-table td:text('STAFF50')")
    finally:
        srv.stop()

    v = stack.visitor()
    phone = "137" + str(int(v[:8], 16) % 10**8).zfill(8)
    member = db.run(membership.signup, phone=phone, consent=True, channel="webchat", external_id=f"web-{v}").card.id
    listed = stack.say(v, "有啥coupon")
    lines = [line for line in "\n".join(listed).splitlines() if re.match(r"^\s*\d+[.、)]", line)]
    ours = next(i for i, line in enumerate(lines, 1) if "店庆满300减50" in line)
    claimed = "\n".join(stack.say(v, f"领第{'一二三四五六七八九'[ours - 1]}张"))
    assert "店庆满300减50" in claimed, claimed
    got = db.run(lambda s: s.execute(select(CouponCampaign.code).join(Coupon, Coupon.campaign_id == CouponCampaign.id)
                                     .where(Coupon.member_id == member)).scalars().all(), readonly=True)
    assert "STAFF50" in got
