"""Chat slang and 繁體 read as the plain words they stand for, before the intent is guessed.

Shoppers type "88" or "886" for 拜拜, "3q", "thx" or "蟹蟹" for 谢谢, "tysm",
"cya", "pls", "kf" for 客服. Such tokens are a small, closed, publicly known
vocabulary, but a model learns each only from training examples that happen
to contain it; the same goes for traditional characters ("會員碼", "註冊"),
while the training examples are simplified. This component writes traditional
characters in their simplified form (bot/nlu/hant.py) and every slang token it
knows as plain words, in the language of the message around it, and keeps the
result as the message's *canonical text*. The intent classifier (bot/nlu/linear.py)
and the sentence encoder (bot/nlu/encoder.py) read the canonical text; the
message's own text, its tokens, the entities and their offsets, the language
detection and everything logged or stored stay as the shopper wrote them.

Only whole tokens change: "thx!" does, "thxbox" does not. Numbers are slang
only where they cannot be a quantity: "88" alone, "好的，88", "886~" read as
拜拜, while "还剩88积分", "满88减10", "88折" or a phone number "138 8888 8888"
stay as written (no other digits, no unit or quantity word, not right after
a word such as 剩/有/满). Latin abbreviations that mean something else in
Chinese chat ("ta" is 他/她 there, "u" and "r" are letters) are read only in
messages without Chinese characters.

It runs on the training examples too, so both sides of the model see the
same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.hant import simplified

# The message attribute holding the canonical text (absent when nothing changed).
CANONICAL_TEXT = "canonical_text"


@dataclass(frozen=True)
class Slang:
    zh: str
    en: str
    home: str  # the language of a message with neither Chinese nor other English words
    latin_only: bool = False  # means something else in Chinese chat


def _entries(zh: str, en: str, home: str, tokens: str, latin_only: bool = False) -> dict[str, Slang]:
    return {t: Slang(zh, en, home, latin_only) for t in tokens.split()}


# Whole Latin/digit tokens, lower case. Common chat abbreviations of both languages.
LEXICON: dict[str, Slang] = {
    # thanks
    **_entries("谢谢", "thanks", "zh", "3q 3x 3ks 3ku 3qs 10q 10x 3q3 xiexie xiexieni"),
    **_entries("谢谢", "thanks", "en", "thx thnx thanx thnks thks tks tnx thku thankq tq tyvm tysm tyty thxs"),
    **_entries("谢谢", "thanks", "en", "ty"),
    **_entries("谢谢", "thanks", "en", "ta merci danke gracias arigato", latin_only=True),
    # bye
    **_entries("拜拜", "bye", "zh", "88 886 3166 baibai zaijian"),
    **_entries("拜拜", "bye", "en", "cya cyaa ttyl ttys gtg g2g l8r l8er laterz bbl byeee adios ciao sayonara"),
    # please, you, are
    **_entries("请", "please", "en", "pls plz plx plse pleez"),
    **_entries("你", "you", "en", "u", latin_only=True),
    **_entries("你的", "your", "en", "ur", latin_only=True),
    **_entries("是", "are", "en", "r", latin_only=True),
    # ok, yes, no
    **_entries("好的", "ok", "en", "kk okk okie okey oki okok"),
    **_entries("好的", "ok", "en", "k", latin_only=True),
    **_entries("当然", "of course", "en", "ofc ofcourse"),
    **_entries("是的", "yes", "en", "yup yeap yess"),
    **_entries("不用了", "no", "en", "nah nope naw"),
    **_entries("算了", "never mind", "en", "nvm"),
    **_entries("不知道", "i don't know", "en", "idk dunno"),
    # everyday words
    **_entries("积分", "points", "en", "pts pnts"),
    **_entries("账户", "account", "en", "acct acc"),
    **_entries("生日", "birthday", "en", "bday b'day"),
    **_entries("消息", "message", "en", "msg msgs"),
    **_entries("什么", "what", "en", "wat wut wht"),
    **_entries("关于", "about", "en", "abt"),
    **_entries("因为", "because", "en", "coz cuz bcoz"),
    **_entries("想要", "want to", "en", "wanna"),
    **_entries("给我", "give me", "en", "gimme"),
    **_entries("让我", "let me", "en", "lemme"),
    **_entries("现在", "right now", "en", "rn"),
    **_entries("明天", "tomorrow", "en", "tmr tmrw tmrrw 2moro 2mrw"),
    **_entries("今天", "today", "en", "2day"),
    **_entries("之前", "before", "en", "b4"),
    **_entries("告诉我", "let me know", "en", "lmk"),
    **_entries("某个东西", "something", "en", "sth smth"),
    **_entries("大家", "people", "en", "ppl"),
    # pinyin initials Chinese shoppers type inside Chinese text
    **_entries("客服", "customer service", "zh", "kf"),
    **_entries("积分", "points", "zh", "jf"),
    **_entries("优惠券", "coupon", "zh", "yhq"),
    # laughing, praising: no request, but no unknown token either
    **_entries("哈哈", "haha", "zh", "233 2333 23333 233333"),
    **_entries("厉害", "awesome", "zh", "666 6666 66666"),
}
# Chinese homophone spellings, replaced wherever they occur (none is an ordinary word).
HOMOPHONES: dict[str, str] = {
    "蟹蟹": "谢谢", "肿么": "怎么", "神马": "什么", "有木有": "有没有",
    "酱紫": "这样子", "灰常": "非常", "好滴": "好的", "好哒": "好的",
}

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile(r"(?<![A-Za-z0-9'])[A-Za-z0-9]+(?:'[A-Za-z]+)?(?![A-Za-z0-9'])")
_DIGIT = re.compile(r"[0-9]")
_WORD = re.compile(r"[A-Za-z]{2,}")
# A message with any of these speaks of amounts, prices or codes: its numbers are not slang.
# (A unit right after the number, "88积分", "88折", is caught by what may follow it.)
_QUANTITY = re.compile(
    r"积分|元|块钱|券|折|减|满|价|钱|号|码|电话|手机|订单|¥|￥|\$|%|#|"
    r"\b(?:points?|pts|rmb|yuan|price|off|no|number|code|phone|order|room)\b",
    re.IGNORECASE,
)
# A number right after one of these characters is an amount ("还剩88", "有88", "第88").
_AMOUNT_BEFORE = set("剩有是共满到差扣花用加减送得赚第约才只还计值就余多少要买了")
# What may follow a number for it to be slang: sentence particles (and separators, see below).
_PARTICLES = set("啦了呀啊哦喽咯哈嘛呢吧噢呦哟")
_REPEATED = re.compile(r"([a-z])\1{2,}")


def _lookup(token: str) -> tuple[str, Slang] | None:
    """The lexicon entry of a token, its repeats ("3q3q") or its stretched spelling ("thxxx")."""
    low = token.lower()
    for candidate in (low, _REPEATED.sub(r"\1", low), _REPEATED.sub(r"\1\1", low)):
        if candidate in LEXICON:
            return candidate, LEXICON[candidate]
    for size in range(2, len(low) // 2 + 1):
        unit = low[:size]
        if len(low) % size == 0 and unit * (len(low) // size) == low and unit in LEXICON:
            return unit, LEXICON[unit]
    return None


def _separator(ch: str) -> bool:
    """Whitespace, punctuation, emoji: anything but a letter, a digit or a Chinese character."""
    return not (ch.isalnum() or _HAN.match(ch))


def _number_is_slang(text: str, start: int, end: int, slang_numbers: Iterable[tuple[int, int]]) -> bool:
    """Whether the number ``text[start:end]`` stands alone, where no amount or code can be meant."""
    if _QUANTITY.search(text):
        return False
    spans = list(slang_numbers)
    if any(ch.isdigit() and not any(a <= i < b for a, b in spans) for i, ch in enumerate(text)):
        return False  # another number: a phone number, a price, a date
    if start:
        before = text[start - 1]
        if not _separator(before) and (not _HAN.match(before) or before in _AMOUNT_BEFORE):
            return False
    if end < len(text):
        after = text[end]
        if not _separator(after) and after not in _PARTICLES:
            return False
    return True


def canonical(text: str) -> str:
    """``text`` with every known slang token written out; the same string when there is none."""
    if not text:
        return text
    out = simplified(text)
    for spelling, plain in HOMOPHONES.items():
        out = out.replace(spelling, plain)
    has_han = bool(_HAN.search(out))
    found = [(m.start(), m.end(), hit) for m in _TOKEN.finditer(out) if (hit := _lookup(m.group()))]
    if not found:
        return out
    slang_spans = {(a, b) for a, b, _ in found}
    plain_words = [
        m.group() for m in _WORD.finditer(out)
        if not any(a <= m.start() < b for a, b in slang_spans)
    ]
    numbers = [(a, b) for a, b, _ in found if out[a:b].isdigit()]
    pieces: list[str] = []
    last = 0
    for start, end, (_, slang) in found:
        token = out[start:end]
        if slang.latin_only and has_han:
            continue
        if token.isdigit() and not _number_is_slang(out, start, end, numbers):
            continue
        language = "zh" if has_han else "en" if plain_words else slang.home
        pieces.append(out[last:start])
        pieces.append(slang.zh if language == "zh" else slang.en)
        last = end
    pieces.append(out[last:])
    return "".join(pieces)


def intent_text(message: Message) -> str:
    """The text intent features are computed from: the canonical text when there is one."""
    return str(message.get(CANONICAL_TEXT) or message.get(TEXT) or "")


# A featurizer by type, so that it runs on the training data as well as on each message,
# in pipeline order; it adds no features of its own.
@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class ChatNormaliser(GraphComponent):
    """Sets :data:`CANONICAL_TEXT` on each message whose text holds chat slang or 繁體."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """No options: the lexicon is in the module."""
        return {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChatNormaliser:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        """Add the canonical text where it differs from the text."""
        for message in messages:
            text = message.get(TEXT)
            if isinstance(text, str) and text:
                plain = canonical(text)
                if plain != text:
                    message.set(CANONICAL_TEXT, plain)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """The same for every training example."""
        self.process(training_data.training_examples)
        return training_data
