"""Typed button titles: normalising, the buttons of the latest bot turn, matching."""

from __future__ import annotations

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

from bot.buttons import last_offered, match, normalize

CLOSE = [("确定注销", "/affirm"), ("不注销了", "/deny")]
CLOSE_EN = [("Close my account", "/affirm"), ("Keep it", "/deny")]


@pytest.mark.parametrize("typed", [
    "确定注销", " 确定注销 ", "确定注销。", "确定注销！", "「确定注销」", "确定注销👍", "⚠️确定注销", "确 定 注 销",
])
def test_a_chinese_title_matches_with_spaces_punctuation_and_emoji(typed: str) -> None:
    assert match(typed, CLOSE) == "/affirm"


@pytest.mark.parametrize("typed", [
    "Close my account", "close my account", "  CLOSE MY ACCOUNT!  ", "Close my account.",
    "ｃｌｏｓｅ　ｍｙ　ａｃｃｏｕｎｔ", "close my account 👩‍💼",
])
def test_an_english_title_matches_ignoring_case_and_width(typed: str) -> None:
    assert match(typed, CLOSE_EN) == "/affirm"


@pytest.mark.parametrize("typed", [
    "确定", "注销", "确定注销吧", "不", "close", "close my account now", "", "！！", "👍",
])
def test_only_the_whole_title_matches(typed: str) -> None:
    assert match(typed, CLOSE + CLOSE_EN) is None


def test_full_width_digits_and_letters_fold_to_half_width() -> None:
    assert normalize("５分") == normalize("5分") == "5分"
    assert match("５分", [("5分", '/rate{"rating": "5"}')]) == '/rate{"rating": "5"}'
    assert normalize("Ｙｅｓ，　ａ　ｐｅｒｓｏｎ") == "yesaperson"


def test_a_title_shared_by_two_payloads_is_ambiguous() -> None:
    offered = [("转人工", "/human"), ("转人工", "/affirm"), ("不用了", "/deny")]
    assert match("转人工", offered) is None
    assert match("不用了", offered) == "/deny"
    # The same payload twice is no ambiguity.
    assert match("转人工", [("转人工", "/human"), ("转人工!", "/human")]) == "/human"


def _bot(text: str, buttons: list[dict[str, str]] | None = None) -> BotUttered:
    return BotUttered(text, {"buttons": buttons} if buttons else {})


def test_the_offer_is_the_bots_latest_turn_only() -> None:
    events = [
        UserUttered("你好"),
        _bot("你好👋", [{"title": "查积分", "payload": "/ask_points"}, {"title": "转人工", "payload": "/human"}]),
        UserUttered("注销会员"),
        ActionExecuted("utter_confirm_close_account"),
        _bot("确定注销吗？", [{"title": "确定注销", "payload": "/affirm"}, {"title": "不注销了", "payload": "/deny"}]),
        _bot("还有别的吗", [{"title": "官网", "url": "https://example.com"}]),  # a link: not a choice
    ]
    assert last_offered(events) == CLOSE
    assert match("查积分", last_offered(events)) is None  # offered one turn earlier
    assert last_offered([*events, UserUttered("确定注销")]) == []
    assert last_offered([*events, UserUttered("x"), _bot("好的")]) == []


def test_quick_replies_count_as_buttons() -> None:
    events = [BotUttered("评分？", {"quick_replies": [{"title": "5分", "payload": "/rate"}]})]
    assert last_offered(events) == [("5分", "/rate")]
