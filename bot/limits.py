"""One limit on what a shopper may send, and the polite refusal every channel gives.

The limit itself is a setting (``BOT_MAX_TEXT_CHARS``, see bot/settings.py).
Channels that can answer refuse a longer text with :func:`too_long_reply`;
the NLU pipeline's first component (bot/nlu/guard.py) cuts whatever still
gets through, so no text can cost jieba and DIET more than the limit allows.
"""

from __future__ import annotations

from bot.nlu.language import detect

# Enough of a text to tell its language; detecting on all of a huge text is work wasted.
_SAMPLE_CHARS = 200

TOO_LONG = {
    "zh": "消息太长了，请简短一点再发给我～（最多 {max} 个字）",
    "en": "That message is too long for me. Please send a shorter one (at most {max} characters).",
}


def reply_language(text: str | None, fallback: str = "zh") -> str:
    """"zh" or "en": the language of the start of ``text``; ``fallback`` when it does not tell."""
    return detect((text or "")[:_SAMPLE_CHARS]) or fallback


def too_long_reply(text: str | None, max_chars: int, fallback: str | None = None) -> str:
    """The short, friendly refusal of an over-long text, in the shopper's language.

    The language is read from the text; ``fallback`` ("zh" or "en", e.g. the
    page's language) applies when the text does not tell or is unknown.
    """
    lang = reply_language(text, fallback if fallback in TOO_LONG else "zh")
    return TOO_LONG[lang].format(max=max_chars)
