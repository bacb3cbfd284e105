"""Chat requests mapped to product categories."""

from __future__ import annotations

from loyalty.recommender.needs import categories_for

KNOWN = {"skincare", "makeup", "snacks", "drinks", "dairy", "baby", "personal_care", "home", "apparel", "gifts"}


def test_kinds_of_product_in_zh_and_en() -> None:
    assert categories_for("护肤品", KNOWN) == ("skincare",)
    assert categories_for("推荐点零食", KNOWN) == ("snacks",)
    assert categories_for("some Snacks please", KNOWN) == ("snacks",)
    assert categories_for("skincare", KNOWN) == ("skincare",)  # a category code itself
    assert categories_for("我的points还有多少 想买牛奶", KNOWN) == ("dairy",)


def test_gifts_for_someone_map_to_gift_friendly_categories() -> None:
    assert categories_for("送妈妈的礼物", KNOWN) == ("gifts", "skincare", "personal_care")
    assert categories_for("a present for my dad", KNOWN) == ("gifts", "drinks", "apparel")
    # A kind named alongside the person comes first.
    assert categories_for("给女朋友买口红", KNOWN)[0] == "makeup"


def test_unknown_or_missing_categories_give_nothing() -> None:
    assert categories_for("随便看看", KNOWN) == ()
    assert categories_for("   ", KNOWN) == ()
    assert categories_for("护肤品", {"snacks"}) == ()  # the shop sells no skincare
    assert categories_for("送妈妈的礼物", {"gifts"}) == ("gifts",)
