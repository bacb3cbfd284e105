"""Which language a message tells: the rule behind the ``language`` slot (bot/nlu/language.py)."""

from __future__ import annotations

import pytest

from bot.nlu.language import detect


@pytest.mark.parametrize(("text", "expected"), [
    ("我的积分还有多少", "zh"),
    ("我的points还有多少", "zh"),  # more Han characters than English words
    ("how many 积分 do I have", "en"),
    ("what coupons can I get?", "en"),
    ("優惠券在哪裡", "zh"),  # traditional characters
    ("Rhythm", "en"),  # y counts as a vowel
])
def test_a_message_that_tells(text: str, expected: str) -> None:
    assert detect(text) == expected


@pytest.mark.parametrize("text", [
    "", "ok", "OK!", "vip", "hi", "13812345678", "WELCOME20", "SH001", "👍👍", "???",
    "zxcvb", "hmm", "qwrtp sdfg",  # keyboard mashes and sounds: no vowel, no word
])
def test_a_message_that_does_not_tell_leaves_the_language_as_it_was(text: str) -> None:
    assert detect(text) is None
