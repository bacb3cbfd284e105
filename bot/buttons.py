"""A button's title, typed, acts as the button: 「确定注销」 typed is the same as tapped.

Shoppers often type what a button says instead of tapping it (WeChat has no
buttons at all, only numbered lines). This module matches a typed message
against the buttons the bot *just offered* in this conversation and, on an
exact match, gives back that button's payload for the channel to send instead
of the text.

Why the buttons just offered, in the channel, and not an NLU component that
learns every title → payload of the domain at training time:

* A title means different things in different places. "Join" is ``/join`` in
  the greeting but ``/affirm`` under "Join now?"; 「确定注销」 and "Close my
  account" answer the close-account question with ``/affirm``, yet typed cold
  they are a *request* to close, which the NLU already understands. An NLU
  component sees one message without the conversation and cannot tell these
  apart; the last offered buttons can.
* It covers every button, also those actions build at run time (coupon
  names), and needs no retraining when a title changes.
* Each channel already has what it offered: the web chat reads the tracker
  (it loads it anyway to deduplicate), WeChat keeps the numbered choices it
  rendered per shopper. The matching itself is here, once, for every channel.

Matching ignores case, spaces, punctuation, symbols and emoji, and full- versus
half-width forms ("  close my account! ", "ＯＫ", 「确定注销。」). A title that
two offered buttons share with different payloads is ambiguous and matches
nothing; the text then goes to the NLU as typed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rasa.shared.core.events import BotUttered, Event, UserUttered

Offer = tuple[str, str]  # (title, payload) of one button the shopper was shown

# Unicode categories kept by :func:`normalize`: letters, digits and the marks of
# scripts that need them. Punctuation (P*), symbols and emoji (S*), spaces (Z*)
# and format characters such as the emoji zero-width joiner (C*) are dropped.
_KEPT = ("L", "N", "Mn", "Mc")


def _variation_selector(ch: str) -> bool:
    code = ord(ch)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def normalize(text: str) -> str:
    """``text`` reduced to what identifies a title: NFKC, case-folded, letters and digits only."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in folded if unicodedata.category(ch).startswith(_KEPT) and not _variation_selector(ch)
    )


def offers_of(buttons: Iterable[Mapping[str, Any]] | None) -> list[Offer]:
    """The (title, payload) of each button that has both (links and title-less buttons are skipped)."""
    out: list[Offer] = []
    for b in buttons or []:
        title, payload = b.get("title"), b.get("payload")
        if isinstance(title, str) and isinstance(payload, str) and title.strip() and payload.strip():
            out.append((title, payload))
    return out


def last_offered(events: Sequence[Event]) -> list[Offer]:
    """The buttons of the bot's latest turn: every bot message since the shopper last wrote."""
    offered: list[Offer] = []
    for event in reversed(events):
        if isinstance(event, UserUttered):
            break
        if isinstance(event, BotUttered):
            data = event.data or {}
            # Earlier messages of the turn first, as the shopper saw them.
            offered[:0] = offers_of(data.get("buttons") or data.get("quick_replies"))
    return offered


def match(text: str, offered: Iterable[Offer]) -> str | None:
    """The payload of the one offered button whose title ``text`` is, or None."""
    key = normalize(text)
    if not key:
        return None
    payloads = {payload for title, payload in offered if normalize(title) == key}
    return payloads.pop() if len(payloads) == 1 else None
