"""Reading a shopper's free text: phone numbers, names and birthdays as people type them."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

PHONE_RUN = re.compile(r"(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}")
NAME_LEAD_INS = re.compile(
    r"^(?:我叫|叫我|我是|名字是|名字叫|姓名[:：]?|称呼我|my name is|my name's|name's|name is|name:|"
    r"i'm|i am|call me|just call me|it's)\s*",
    re.IGNORECASE,
)
MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
)}


def phone_in(text: str) -> str:
    """The first phone-like run in ``text`` (NFKC-normalised), or the text itself."""
    text = unicodedata.normalize("NFKC", text or "")
    m = PHONE_RUN.search(text)
    return m.group(0) if m else text.strip()


def clean_name(text: str) -> str | None:
    """A name from "我叫小王" / "call me Amy 😊"; None if nothing usable is left (1-20 characters)."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    t = NAME_LEAD_INS.sub("", t)
    t = "".join(ch for ch in t if unicodedata.category(ch)[0] in "LMN" or ch in " ·.-'")
    t = t.strip(" .-'·")
    return t if 1 <= len(t) <= 20 else None


def _year(y: int, today: date) -> int:
    if y >= 100:
        return y
    full = 2000 + y
    return full if full <= today.year else 1900 + y


def _make(y: int, m: int, d: int, today: date) -> date | None:
    try:
        result = date(_year(y, today), m, d)
    except ValueError:
        return None
    return result if date(1900, 1, 1) <= result <= today else None


def parse_birthday(text: str, today: date) -> date | None:
    """A birthday in the many ways people write one, or None (month and day alone are not enough)."""
    t = unicodedata.normalize("NFKC", text or "").strip().lower()
    t = t.replace("号", "日")
    m = re.search(r"(\d{2,4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?", t)
    if m:
        return _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)
    m = re.search(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b", t)
    if m:
        return _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)
    m = re.search(r"\b(\d{4})(\d{2})(\d{2})\b", t)
    if m:
        return _make(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)
    m = re.search(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b", t)
    if m:
        a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return _make(y, b, a, today) if a > 12 else _make(y, a, b, today)
    m = re.search(r"\b([a-z]{3})[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", t)
    if m and m.group(1) in MONTHS:
        return _make(int(m.group(3)), MONTHS[m.group(1)], int(m.group(2)), today)
    m = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]{3})[a-z]*\.?,?\s+(\d{4})\b", t)
    if m and m.group(2) in MONTHS:
        return _make(int(m.group(3)), MONTHS[m.group(2)], int(m.group(1)), today)
    return None


_SCORE_OF = re.compile(r"(?<!\d)(\d+)\s*(?:/|out of|of)\s*5(?!\d)", re.IGNORECASE)
_ZH_SCORE = re.compile(r"([一二两三四五])\s*(?:分|星|颗星|顆星)")
_ZH_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}


def score_in(text: str) -> int | None:
    """A 1-5 score as typed without the model finding it: "5", "4/5", "3 out of 5", "五分", "满分"."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    m = _SCORE_OF.search(t)
    runs = re.findall(r"\d+", t)
    if m:
        value = int(m.group(1))
    elif len(runs) == 1:
        value = int(runs[0])
    elif not runs and (z := _ZH_SCORE.search(t)):
        value = _ZH_DIGITS[z.group(1)]
    elif not runs and ("满分" in t or "滿分" in t):
        value = 5
    else:
        return None
    return value if 1 <= value <= 5 else None
