"""Two browsers at once: a shopper in the web chat and an agent in the console, live both ways.

The shopper asks for a person; the agent logs in, sees the conversation arrive
without reloading, takes it, both exchange messages, the agent grants a
goodwill coupon (it lands in the member's coupons), ends; the bot greets the
shopper again and the shopper rates the conversation.
"""

from __future__ import annotations

import re
import time

import pytest

from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.members import service as members
from tests.e2e.handoff_kit import agent, handoff_of, shared_stack, wait_for
from tests.loyalty.corekit import join
from tests.support.browser import chromium
from tests.support.stack import ROOT, Stack

pytestmark = pytest.mark.browser
SHOTS = ROOT / "results" / "screenshots"



@pytest.fixture
def handoff_stack(request: pytest.FixtureRequest) -> Stack:
    return shared_stack(request)

def test_shopper_and_agent_live_from_request_to_rating(handoff_stack: Stack) -> None:
    s = handoff_stack
    SHOTS.mkdir(parents=True, exist_ok=True)
    agent("lily", display="莉莉")
    member = join()
    with chromium() as browser:
        shopper = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN").new_page()
        console = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN").new_page()
        shopper.goto(f"{s.base}/webhooks/webchat/")
        shopper.locator(".msg.bot").first.wait_for(timeout=60_000)
        visitor = shopper.evaluate("JSON.parse(localStorage.getItem('loyalty.webchat')).visitor")
        db.run(members.bind_identity, member, "webchat", f"web-{visitor}")

        console.goto(f"{s.console}/")
        console.fill("#username", "lily")
        console.fill("#password", "correct horse battery")
        console.click("#login-button")
        console.locator("#app").wait_for(state="visible")
        console.locator("#conn", has_text="已连接").wait_for()

        asked = time.monotonic()
        shopper.fill("#input", "转人工")
        shopper.press("#input", "Enter")
        h = wait_for(lambda: handoff_of(f"web-{visitor}"))
        entry = console.locator(f"[data-testid=queue] [data-testid=entry-{h.id}]")
        entry.wait_for(timeout=30_000)  # pushed: no reload
        appeared = time.monotonic() - asked
        shopper.locator(".msg.bot", has_text=re.compile("转接|排队")).wait_for(timeout=30_000)
        assert h.status == "queued"

        entry.click()
        console.click("#take")
        shopper.locator(".msg.bot", has_text="莉莉").wait_for(timeout=30_000)  # the greeting names the agent
        console.locator("#composer").wait_for(state="visible")

        console.fill("#reply", "你好，我来帮你看看积分的问题")
        console.press("#reply", "Enter")
        shopper.locator(".msg.bot", has_text="我来帮你看看积分的问题").wait_for(timeout=30_000)

        shopper.fill("#input", "上周买的东西没有积分")
        shopper.press("#input", "Enter")
        console.locator("[data-testid=transcript] .msg.shopper", has_text="上周买的东西没有积分").wait_for(
            timeout=30_000)

        console.select_option("#coupon-pick", "SORRY10")
        console.click("#grant")
        console.locator("#toast", has_text="致歉券").wait_for(timeout=30_000)
        held = [c for c in db.run(coupons.member_coupons, member) if c.campaign.code == "SORRY10"]
        assert len(held) == 1
        assert held[0].code in console.input_value("#reply")  # prefilled for the shopper
        console.press("#reply", "Enter")
        shopper.locator(".msg.bot", has_text=held[0].code).wait_for(timeout=30_000)
        console.screenshot(path=str(SHOTS / "console_conversation.png"), full_page=True)
        shopper.screenshot(path=str(SHOTS / "webchat_with_agent.png"), full_page=True)

        console.once("dialog", lambda d: d.accept())
        console.click("#end")
        shopper.locator(".msg.bot", has_text="人工服务已结束").wait_for(timeout=30_000)
        shopper.get_by_role("button", name="5分", exact=True).wait_for(timeout=30_000)
        shopper.get_by_role("button", name="5分", exact=True).click()
        shopper.locator(".msg.bot", has_text="谢谢你的评分").wait_for(timeout=30_000)
        closed = handoff_of(f"web-{visitor}")
        assert closed is not None and closed.status == "closed" and closed.rating == 5
        console.locator("#banner", has_text="对话已结束").wait_for(timeout=30_000)
        shopper.screenshot(path=str(SHOTS / "webchat_rated.png"), full_page=True)
    print(f"\nconversation appeared in the open console {appeared * 1000:.0f} ms after the shopper's request")
