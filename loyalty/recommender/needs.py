"""What a shopper asks for in chat ("护肤品", "零食", "送妈妈的礼物") -> product categories.

Categories are the codes stored in ``Product.category``. A need names either a
kind of product or a person to buy for; both map to one or more categories.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

# (keywords, categories). Keywords are matched as substrings of the lower-cased
# request, so "送妈妈的礼物" hits both "妈妈" and "礼物".
_KINDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("护肤", "面霜", "保湿", "精华", "面膜", "skincare", "skin care", "moisturi", "serum", "face cream"),
     ("skincare",)),
    (("彩妆", "化妆", "口红", "粉底", "makeup", "make-up", "lipstick", "cosmetic"), ("makeup",)),
    (("零食", "小吃", "饼干", "薯片", "坚果", "snack", "chips", "cookie", "nuts"), ("snacks",)),
    (("饮料", "喝的", "果汁", "茶饮", "咖啡", "drink", "beverage", "juice", "coffee"), ("drinks",)),
    (("牛奶", "酸奶", "乳制品", "奶酪", "milk", "dairy", "yogurt", "yoghurt", "cheese"), ("dairy",)),
    (("母婴", "宝宝", "婴儿", "奶粉", "尿不湿", "baby", "infant", "diaper", "nappy"), ("baby",)),
    (("个人护理", "洗护", "洗发", "沐浴", "牙膏", "personal care", "shampoo", "toothpaste", "body wash"),
     ("personal_care",)),
    (("家居", "家用", "厨房", "收纳", "home", "household", "kitchen"), ("home",)),
    (("服饰", "服装", "衣服", "袜子", "apparel", "clothes", "clothing", "socks"), ("apparel",)),
    (("礼物", "礼品", "送礼", "礼盒", "gift", "present"), ("gifts",)),
)
_PEOPLE: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("妈妈", "母亲", "老妈", "mom", "mum", "mother"), ("gifts", "skincare", "personal_care")),
    (("爸爸", "父亲", "老爸", "dad", "father"), ("gifts", "drinks", "apparel")),
    (("女朋友", "老婆", "妻子", "girlfriend", "wife"), ("gifts", "makeup", "skincare")),
    (("男朋友", "老公", "丈夫", "boyfriend", "husband"), ("gifts", "apparel", "drinks")),
    (("孩子", "小孩", "儿童", "宝贝", "kid", "child"), ("baby", "snacks", "gifts")),
    (("老人", "长辈", "爷爷", "奶奶", "外公", "外婆", "grandma", "grandpa", "grandparent", "elderly"),
     ("gifts", "dairy", "home")),
    (("朋友", "同事", "friend", "colleague"), ("gifts", "snacks")),
)


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)


def categories_for(text: str, known: Collection[str]) -> tuple[str, ...]:
    """Categories a request points to, most specific first, limited to ``known`` ones.

    A category code itself ("skincare") is accepted too. Nothing recognised
    gives an empty tuple (the caller then recommends across the catalogue or
    asks again).
    """
    q = text.strip().lower()
    if not q:
        return ()
    if q in known:
        return (q,)
    found: list[str] = []
    for keywords, cats in _KINDS + _PEOPLE:  # kinds first: "零食" beats "for a friend"
        if any(k in q for k in keywords):
            found.extend(cats)
    return tuple(c for c in _dedupe(found) if c in known)
