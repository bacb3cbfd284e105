"""A shopper in a real browser: scans a store code, joins, sees the real balance; HTML stays text."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from loyalty import db
from loyalty.members.models import Member
from loyalty.orders import service as orders
from tests.support.browser import chromium
from tests.support.stack import ROOT, Stack

pytestmark = pytest.mark.browser
SHOTS = ROOT / "results" / "screenshots"


def _bot_texts(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator(".msg.bot").all_inner_texts()


def _wait_bot(page, needle: str, timeout: float = 60_000) -> None:  # type: ignore[no-untyped-def]
    page.locator(".msg.bot", has_text=needle).last.wait_for(timeout=timeout)


def _say(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("#input", text)
    page.press("#input", "Enter")


def test_store_qr_join_and_real_balance(stack: Stack) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
        page.goto(f"{stack.base}/webhooks/webchat/?store=SH001")
        _wait_bot(page, "上海静安店")  # the store-aware welcome
        page.get_by_role("button", name="加入", exact=True).click()
        _wait_bot(page, "隐私")
        page.get_by_role("button", name="同意", exact=True).click()
        _wait_bot(page, "请告诉我你的手机号")
        _say(page, "139 0000 1234")
        _wait_bot(page, "怎么称呼你")
        _say(page, "跳过")
        _wait_bot(page, "你的生日是哪天")
        _say(page, "跳过")
        _wait_bot(page, "入会成功")
        with db.session() as s:
            member = s.execute(select(Member).where(Member.phone == "13900001234")).scalar_one()
            assert member.store is not None and member.store.code == "SH001"
            member_id = member.id
        now = datetime.now(timezone.utc).isoformat()
        db.run(orders.record_order, "pos", {"external_id": "BROWSER-1", "placed_at": now, "amount": "268.00",
                                            "member_id": member_id})
        _say(page, "我的积分还有多少")
        _wait_bot(page, "268")
        page.screenshot(path=str(SHOTS / "webchat_join_points.png"), full_page=True)
        # Reload: the conversation is still there (same visitor, history replayed).
        page.reload()
        _wait_bot(page, "268")


def test_typed_html_is_shown_as_text(stack: Stack) -> None:
    evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"><b>hi</b>'
    with chromium() as browser:
        page = browser.new_page(locale="en-US")
        page.goto(f"{stack.base}/webhooks/webchat/?lang=en")
        page.locator(".msg.bot").first.wait_for(timeout=60_000)
        _say(page, evil)
        mine = page.locator(".msg.me").last
        mine.wait_for()
        assert mine.inner_text() == evil
        assert page.locator(".msg.me b, .msg.me img, .msg.me script").count() == 0
        assert page.evaluate("window.__pwned") is None
        page.wait_for_timeout(1500)  # let the bot answer; its echo of the text must be inert too
        assert page.evaluate("window.__pwned") is None
        page.screenshot(path=str(SHOTS / "webchat_html_as_text.png"))


def test_page_works_in_english(stack: Stack) -> None:
    with chromium() as browser:
        page = browser.new_page(locale="en-US")
        page.goto(f"{stack.base}/webhooks/webchat/?store=BJ001&lang=en")
        _wait_bot(page, "Beijing Sanlitun")
        assert page.locator("#send").inner_text() == "Send"


def test_too_long_texts_get_a_friendly_answer_on_the_page(stack: Stack) -> None:
    with chromium() as browser:
        page = browser.new_page(locale="zh-CN")
        page.goto(f"{stack.base}/webhooks/webchat/")
        page.locator(".msg.bot").first.wait_for(timeout=60_000)
        # The input holds 1,000 characters; a script (or an old page) may still send more.
        page.evaluate("document.getElementById('input').removeAttribute('maxlength')")
        _say(page, "好" * 1500)  # over the text limit, within the frame limit: the server explains
        _wait_bot(page, "消息太长了")
        assert page.input_value("#input") == "好" * 1500  # given back to shorten
        assert page.locator(".msg.me", has_text="好" * 100).count() == 0
        page.fill("#input", "积分" * 17_000)  # a 100 KB frame: the server closes the socket (1009)
        page.press("#input", "Enter")
        page.locator(".msg.bot", has_text="消息太长了").nth(1).wait_for(timeout=10_000)
        page.wait_for_timeout(3000)  # reconnected, and the refused text is not sent again
        assert page.locator(".msg.bot", has_text="消息太长了").count() == 2
        shown = page.locator(".msg.bot").count()
        _say(page, "你好")  # and the page still talks
        page.locator(".msg.bot").nth(shown).wait_for(timeout=60_000)


def test_member_code_is_shown_inline_and_scans(stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
        page.goto(f"{stack.base}/webhooks/webchat/")
        page.locator(".msg.bot").first.wait_for(timeout=60_000)
        for text, answer in (("我要入会", "隐私"), ("同意", "手机号"), ("139 0000 5678", "怎么称呼你"),
                             ("跳过", "你的生日是哪天"), ("跳过", "入会成功")):
            _say(page, text)
            _wait_bot(page, answer)
        _say(page, "会员码")
        _wait_bot(page, "会员码 88")
        image = page.locator("img.msg-image").last
        image.wait_for(timeout=30_000)
        assert page.evaluate("document.querySelector('img.msg-image').naturalWidth") > 100
        digits = "".join(ch for ch in _bot_texts(page)[-1].split("\n")[0] if ch.isdigit())
        shot = tmp_path / "member_code.png"
        image.screenshot(path=str(shot))
        page.screenshot(path=str(SHOTS / "webchat_member_code.png"), full_page=True)
        out = subprocess.run(["zbarimg", "-q", "--raw", str(shot)], capture_output=True, text=True, timeout=30)
        assert len(digits) == 10 and out.stdout.strip() == digits
