"""Deterministic demo data: stores, a bilingual catalogue and members with a year of real-looking orders.

Everything is drawn from ``random.Random`` instances seeded from the demo
seed, so the same seed and end date give the same database (see
:func:`digest`). Only referral and coupon codes differ between runs: the
services draw them from ``secrets`` on purpose, and the digest leaves them out.

Shopping behaviour, in brief: each member has category affinities (a
Dirichlet draw biased by a persona), a home store, a few favourite products,
consumables re-bought at a personal cadence (milk weekly, diapers monthly),
festival and summer seasonality, an online share, and a lifecycle (active,
dormant, churned, one-off, never bought). Members, orders, returns, coupons,
birthdays, opt-outs, tier reviews and point expiry all go through the real
services with ``now=`` set to the simulated time, so the ledger, lots, tiers
and referrals are exactly what the live system would have produced.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty import db
from loyalty.catalogue.models import Product, Store
from loyalty.common import fen_to_yuan, local_midnight, yuan_to_fen
from loyalty.config import SHANGHAI, settings
from loyalty.coupons import gifts
from loyalty.coupons import service as coupons
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.orders.models import Order, OrderLine
from loyalty.points import service as points
from loyalty.points.models import LedgerEntry, PointsLot
from loyalty.referrals.models import Referral
from loyalty.tiers import service as tiers
from loyalty.tiers.models import TierChange

# ---------------------------------------------------------------------------
# Reference tables (reused by the bot and the recommender)
# ---------------------------------------------------------------------------

#: Product categories: code (English snake_case, stored in ``Product.category``) -> (zh, en).
CATEGORIES: dict[str, tuple[str, str]] = {
    "skincare": ("护肤品", "Skincare"),
    "makeup": ("彩妆", "Makeup"),
    "snacks": ("零食", "Snacks"),
    "drinks": ("饮料", "Drinks"),
    "dairy": ("乳制品", "Dairy"),
    "baby": ("母婴", "Baby"),
    "personal_care": ("个人护理", "Personal care"),
    "home": ("家居", "Home"),
    "apparel": ("服饰", "Apparel"),
    "gifts": ("礼品", "Gifts"),
}

#: City names as stored in ``Store.city`` -> English.
CITIES: dict[str, str] = {"上海": "Shanghai", "北京": "Beijing", "杭州": "Hangzhou"}


@dataclass(frozen=True)
class StoreSpec:
    code: str
    name_zh: str
    name_en: str
    city: str
    weight: float  # share of members who call it home


STORES: tuple[StoreSpec, ...] = (
    StoreSpec("SH001", "上海静安店", "Shanghai Jing'an", "上海", 0.27),
    StoreSpec("SH002", "上海徐汇店", "Shanghai Xuhui", "上海", 0.21),
    StoreSpec("BJ001", "北京朝阳店", "Beijing Chaoyang", "北京", 0.22),
    StoreSpec("BJ002", "北京海淀店", "Beijing Haidian", "北京", 0.16),
    StoreSpec("HZ001", "杭州西湖店", "Hangzhou West Lake", "杭州", 0.14),
)

# Lunar festivals move every year (Asia/Shanghai dates).
SPRING_FESTIVAL: dict[int, date] = {
    2023: date(2023, 1, 22), 2024: date(2024, 2, 10), 2025: date(2025, 1, 29), 2026: date(2026, 2, 17),
    2027: date(2027, 2, 6), 2028: date(2028, 1, 26), 2029: date(2029, 2, 13), 2030: date(2030, 2, 3),
}
MID_AUTUMN: dict[int, date] = {
    2023: date(2023, 9, 29), 2024: date(2024, 9, 17), 2025: date(2025, 10, 6), 2026: date(2026, 9, 25),
    2027: date(2027, 9, 15), 2028: date(2028, 10, 3), 2029: date(2029, 9, 22), 2030: date(2030, 9, 12),
}

# Fictional brands per category: (zh, en, price factor).
_BRANDS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "skincare": (("澜肌", "Lanskin", 1.0), ("水漾", "Aquaglow", 0.8), ("草本研", "Herbalab", 1.3)),
    "makeup": (("绯色", "Blushé", 1.0), ("星妆", "Starglam", 0.75), ("木棉", "Kapok", 1.2)),
    "snacks": (("好味坊", "Tastyfarm", 1.0), ("山野", "Wildhill", 1.15), ("小馋猫", "Nibblecat", 0.85)),
    "drinks": (("清泉", "Clearspring", 1.0), ("鲜活", "Freshup", 1.1), ("茶语", "Teatalk", 0.95)),
    "dairy": (("牧场", "Meadow", 1.0), ("晨光", "Morninglight", 0.9), ("雪原", "Snowfield", 1.2)),
    "baby": (("贝乐", "Bella Baby", 1.0), ("小树", "Sapling", 0.85), ("暖暖", "Cosy", 1.15)),
    "personal_care": (("净澈", "Puraclear", 1.0), ("森语", "Forestalk", 1.2), ("白鲸", "Beluga", 0.85)),
    "home": (("居家", "Homely", 1.0), ("洁宝", "Cleanbao", 0.9), ("木语", "Woodtalk", 1.25)),
    "apparel": (("棉仓", "Cottonbarn", 1.0), ("简衣", "Simplewear", 0.85), ("风行", "Breeze", 1.2)),
    "gifts": (("礼悦", "Joygift", 1.0), ("福满", "Fortune", 1.1), ("月满", "Fullmoon", 0.95)),
}

# Variant lists shared by several products: (zh, en, price factor).
_SIZE = (("标准装", "regular", 1.0), ("旅行装", "travel size", 0.45))
_ONE = (("", "", 1.0),)


@dataclass(frozen=True)
class _Base:
    """A kind of product, made in several brands and variants."""

    category: str
    zh: str
    en: str
    price: float  # yuan, before brand and variant factors
    cadence: int = 0  # days between re-buys for a consumable (0: bought now and then)
    season: str = ""  # a seasonality tag, see _season_weight
    popularity: float = 1.0
    variants: tuple[tuple[str, str, float], ...] = _ONE
    brands: int = 3  # how many of the category's brands make it
    max_qty: int = 1
    always: bool = False  # never out of stock nor delisted (a campaign gives it away)


_BASES: tuple[_Base, ...] = (
    # 护肤品 skincare
    _Base("skincare", "洁面乳", "facial cleanser", 69, 60, popularity=1.6, variants=_SIZE),
    _Base("skincare", "爽肤水", "toner", 89, 75, variants=_SIZE),
    _Base("skincare", "精华液", "serum", 239, 75, "shopping", 1.3, _SIZE),
    _Base("skincare", "面霜", "moisturising cream", 189, 75, "shopping", 1.2, _SIZE),
    _Base("skincare", "眼霜", "eye cream", 199, 90, "shopping", 0.7),
    _Base("skincare", "防晒霜", "sunscreen SPF50", 129, 60, "summer", 1.2, _SIZE),
    _Base("skincare", "补水面膜10片", "hydrating sheet masks x10", 99, 30, "", 1.4),
    _Base("skincare", "卸妆油", "cleansing oil", 119, 75, variants=_SIZE),
    _Base("skincare", "护手霜", "hand cream", 39, 0, "winter", 0.9),
    # 彩妆 makeup
    _Base("makeup", "口红", "lipstick", 159, 0, "valentine", 1.5,
          (("正红", "classic red", 1.0), ("豆沙色", "rosewood", 1.0), ("珊瑚色", "coral", 1.0))),
    _Base("makeup", "粉底液", "liquid foundation", 239, 90, "shopping", 1.1,
          (("象牙白", "ivory", 1.0), ("自然色", "natural", 1.0))),
    _Base("makeup", "眼影盘", "eyeshadow palette", 189, 0, "shopping", 0.8),
    _Base("makeup", "睫毛膏", "mascara", 99, 90, popularity=1.0),
    _Base("makeup", "眉笔", "eyebrow pencil", 59, 60, popularity=1.1),
    _Base("makeup", "定妆散粉", "setting powder", 129, 0, popularity=0.7),
    _Base("makeup", "腮红", "blush", 109, 0, popularity=0.6),
    _Base("makeup", "卸妆湿巾", "makeup remover wipes", 29.9, 30, popularity=1.0),
    # 零食 snacks
    _Base("snacks", "每日坚果30包", "daily mixed nuts 30 packs", 109, 30, "spring_festival", 1.4),
    _Base("snacks", "薯片", "potato chips", 9.9, 0, "", 1.8,
          (("原味", "original", 1.0), ("黄瓜味", "cucumber", 1.0), ("番茄味", "tomato", 1.0)), 2, 3),
    _Base("snacks", "牛肉干", "beef jerky", 39, 0, "", 1.0, brands=2, max_qty=2),
    _Base("snacks", "苏打饼干", "soda crackers", 15.9, 21, "", 1.2, max_qty=2),
    _Base("snacks", "黑巧克力", "dark chocolate", 29.9, 0, "valentine", 1.1, max_qty=2),
    _Base("snacks", "辣条", "spicy gluten strips", 6.9, 0, "", 1.3, brands=2, max_qty=3),
    _Base("snacks", "海苔脆", "crispy seaweed", 19.9, 0, "", 0.9, max_qty=2),
    _Base("snacks", "芒果干", "dried mango", 25.9, 0, "", 0.9, max_qty=2),
    _Base("snacks", "蛋黄酥", "salted egg yolk pastry", 36.9, 0, "mid_autumn", 0.8, brands=2),
    _Base("snacks", "焦糖瓜子", "caramel sunflower seeds", 12.9, 0, "spring_festival", 1.0, brands=2, max_qty=2),
    # 饮料 drinks
    _Base("drinks", "天然矿泉水550ml×24", "mineral water 550ml x24", 39.9, 14, "summer", 1.6),
    _Base("drinks", "苏打水", "soda water", 4.5, 0, "summer", 1.0,
          (("单瓶", "bottle", 1.0), ("12瓶装", "12-pack", 10.0))),
    _Base("drinks", "无糖绿茶", "unsweetened green tea", 4.0, 0, "summer", 1.3,
          (("单瓶", "bottle", 1.0), ("15瓶装", "15-pack", 13.0))),
    _Base("drinks", "鲜榨橙汁1L", "orange juice 1L", 16.9, 10, "", 1.0, max_qty=2),
    _Base("drinks", "冷萃咖啡6瓶", "cold brew coffee x6", 45, 14, "", 1.0, brands=2),
    _Base("drinks", "乌龙茶", "oolong tea", 4.5, 0, "summer", 0.9, brands=2, max_qty=4),
    _Base("drinks", "椰子水1L", "coconut water 1L", 19.9, 0, "summer", 0.8, brands=2, max_qty=2),
    _Base("drinks", "气泡酸梅汤", "sparkling plum drink", 5.5, 0, "summer", 0.8, brands=2, max_qty=4),
    _Base("drinks", "柠檬茶", "lemon tea", 5.0, 0, "summer", 1.0, brands=2, max_qty=4),
    # 乳制品 dairy
    _Base("dairy", "鲜牛奶950ml", "fresh milk 950ml", 15.9, 7, "", 2.0, max_qty=2),
    _Base("dairy", "原味酸奶4杯", "plain yoghurt 4 cups", 12.9, 6, "", 1.6, max_qty=2),
    _Base("dairy", "纯牛奶250ml×12", "UHT milk 250ml x12", 59, 14, "spring_festival", 1.4),
    _Base("dairy", "儿童奶酪棒", "kids' cheese sticks", 39, 21, "", 1.0),
    _Base("dairy", "淡味黄油", "unsalted butter", 29.9, 45, "", 0.6, brands=2),
    _Base("dairy", "希腊酸奶", "Greek yoghurt", 19.9, 10, "", 0.9),
    _Base("dairy", "低脂牛奶950ml", "low-fat milk 950ml", 16.9, 7, "", 0.9, brands=2, max_qty=2),
    _Base("dairy", "成长牛奶200ml×12", "kids' growth milk 200ml x12", 69, 14, "", 0.7, brands=2),
    _Base("dairy", "芝士片", "cheese slices", 32.9, 21, "", 0.7, brands=2),
    _Base("dairy", "乳酸菌饮品5瓶", "probiotic drink x5", 13.9, 7, "", 0.9, brands=2),
    # 母婴 baby
    _Base("baby", "纸尿裤", "diapers", 129, 30, "", 1.8,
          (("M码", "size M", 1.0), ("L码", "size L", 1.0), ("XL码", "size XL", 1.05))),
    _Base("baby", "婴儿湿巾80抽×6", "baby wipes 80 x6", 39.9, 21, "", 1.5),
    _Base("baby", "婴儿配方奶粉3段800g", "infant formula stage 3 800g", 268, 20, "", 1.3),
    _Base("baby", "婴儿米粉", "baby rice cereal", 59, 30, "", 0.8, brands=2),
    _Base("baby", "婴儿洗发沐浴露", "baby shampoo & wash", 59, 60, "", 0.9),
    _Base("baby", "宽口径奶瓶", "wide-neck feeding bottle", 89, 0, "", 0.6, brands=2),
    _Base("baby", "婴儿护臀膏", "diaper rash cream", 45, 60, "", 0.7, brands=2),
    _Base("baby", "婴儿润肤霜", "baby moisturiser", 69, 60, "winter", 0.7, brands=2),
    _Base("baby", "防漏学饮杯", "spill-proof sippy cup", 59, 0, "", 0.5, brands=2),
    # 个人护理 personal care
    _Base("personal_care", "洗发水", "shampoo", 49.9, 45, "", 1.5,
          (("去屑", "anti-dandruff", 1.0), ("滋润", "nourishing", 1.0))),
    _Base("personal_care", "护发素", "conditioner", 49.9, 50, "", 0.9),
    _Base("personal_care", "沐浴露", "body wash", 39.9, 45, "summer", 1.3),
    _Base("personal_care", "美白牙膏", "whitening toothpaste", 19.9, 60, "", 1.5, max_qty=2),
    _Base("personal_care", "电动牙刷刷头4支", "electric toothbrush heads x4", 69, 90, "", 0.7, brands=2),
    _Base("personal_care", "软毛牙刷4支", "soft toothbrushes x4", 29.9, 90, "", 0.9),
    _Base("personal_care", "漱口水", "mouthwash", 29.9, 45, "", 0.7, brands=2),
    _Base("personal_care", "卫生巾日用", "sanitary pads, day", 25.9, 28, "", 1.2, max_qty=2),
    _Base("personal_care", "剃须刀片4片", "razor blades x4", 89, 60, "", 0.6, brands=2),
    _Base("personal_care", "泡沫洗手液", "foaming hand wash", 19.9, 40, "", 0.9, max_qty=2),
    _Base("personal_care", "保湿身体乳", "body lotion", 59, 60, "winter", 0.9),
    # 家居 home
    _Base("home", "洗衣液3kg", "laundry liquid 3kg", 49.9, 45, "", 1.5),
    _Base("home", "洗洁精", "dish soap", 15.9, 40, "", 1.2),
    _Base("home", "抽纸10包", "facial tissues x10", 39.9, 30, "", 1.6),
    _Base("home", "卷纸10卷", "toilet paper x10", 45.9, 30, "", 1.4),
    _Base("home", "垃圾袋", "bin bags", 19.9, 45, "", 1.0, brands=2),
    _Base("home", "保鲜膜", "cling film", 15.9, 60, "", 0.7, brands=2),
    _Base("home", "厨房湿巾", "kitchen wipes", 12.9, 30, "", 0.8, brands=2),
    _Base("home", "纯棉毛巾", "cotton towel", 39, 0, "", 0.8),
    _Base("home", "收纳箱", "storage box", 49, 0, "", 0.6, brands=2),
    _Base("home", "香薰蜡烛", "scented candle", 89, 0, "winter", 0.5, brands=2),
    _Base("home", "保温杯500ml", "vacuum flask 500ml", 129, 0, "winter", 0.6, brands=2),
    # 服饰 apparel
    _Base("apparel", "纯棉T恤", "cotton T-shirt", 79, 0, "summer", 1.3,
          (("白色M", "white M", 1.0), ("白色L", "white L", 1.0), ("黑色L", "black L", 1.0))),
    _Base("apparel", "棉袜5双装", "cotton socks 5 pairs", 39, 90, "", 1.2),
    _Base("apparel", "家居睡衣", "pyjamas", 159, 0, "", 0.7),
    _Base("apparel", "连帽卫衣", "hoodie", 199, 0, "winter", 0.8, (("M", "M", 1.0), ("L", "L", 1.0))),
    _Base("apparel", "轻薄羽绒背心", "light down vest", 299, 0, "winter", 0.6),
    _Base("apparel", "防晒衣", "UV-protection jacket", 169, 0, "summer", 0.8),
    _Base("apparel", "运动短裤", "sports shorts", 99, 0, "summer", 0.7),
    _Base("apparel", "内裤3条装", "briefs 3-pack", 69, 120, "", 0.9),
    _Base("apparel", "羊毛围巾", "wool scarf", 129, 0, "winter", 0.5, brands=2),
    # 礼品 gifts
    _Base("gifts", "坚果礼盒", "nut gift box", 198, 0, "spring_festival", 1.3),
    _Base("gifts", "茶叶礼盒", "tea gift box", 368, 0, "festival", 0.9),
    _Base("gifts", "巧克力礼盒", "chocolate gift box", 168, 0, "valentine", 1.0),
    _Base("gifts", "月饼礼盒", "mooncake gift box", 228, 0, "mid_autumn", 1.2),
    _Base("gifts", "护肤礼盒", "skincare gift set", 499, 0, "festival", 0.8, always=True),
    _Base("gifts", "年货大礼包", "New Year hamper", 298, 0, "spring_festival", 1.2),
    _Base("gifts", "红酒礼盒", "wine gift box", 268, 0, "festival", 0.7, brands=2),
    _Base("gifts", "保温杯礼盒", "vacuum flask gift set", 199, 0, "festival", 0.6, brands=2),
    _Base("gifts", "帆布袋", "canvas tote bag", 29, 0, "", 0.4, brands=1, always=True),
    _Base("gifts", "香氛礼盒", "fragrance gift set", 259, 0, "festival", 0.7, brands=2),
    _Base("gifts", "零食大礼包", "snack hamper", 128, 0, "spring_festival", 1.0),
)

_SKU_PREFIX = {
    "skincare": "SKN", "makeup": "MKP", "snacks": "SNK", "drinks": "DRK", "dairy": "DRY",
    "baby": "BBY", "personal_care": "PCR", "home": "HOM", "apparel": "APP", "gifts": "GFT",
}


@dataclass(frozen=True)
class ProductSpec:
    """One catalogue item as seeded, with what the simulation needs to know about it."""

    sku: str
    name_zh: str
    name_en: str
    category: str
    price_fen: int
    stock: int
    active: bool
    cadence: int
    season: str
    popularity: float
    max_qty: int


def _shelf_price(yuan: float) -> int:
    """A shop-looking price in fen: ends in .9 under 100 yuan, in 9 yuan above."""
    if yuan < 10:
        return max(100, int(round(yuan * 10)) * 10)
    if yuan < 100:
        return int(yuan) * 100 + 90
    return (int(yuan) // 10 * 10 + 9) * 100


def catalogue(seed: int) -> list[ProductSpec]:
    """The demo catalogue: a few hundred SKUs in every category, zh and en names, stock and state."""
    rng = random.Random(f"demo:{seed}:catalogue")
    out: list[ProductSpec] = []
    counters: dict[str, int] = defaultdict(int)
    for base in _BASES:
        for brand_zh, brand_en, factor in _BRANDS[base.category][: base.brands]:
            for var_zh, var_en, vfactor in base.variants:
                counters[base.category] += 1
                sku = f"{_SKU_PREFIX[base.category]}{counters[base.category]:04d}"
                price = base.price * factor * vfactor * rng.uniform(0.92, 1.08)
                name_zh = f"{brand_zh}{base.zh}" + (f"（{var_zh}）" if var_zh else "")
                name_en = f"{brand_en} {base.en}" + (f" ({var_en})" if var_en else "")
                roll = 1.0 if base.always else rng.random()
                # A few items out of stock and a few delisted, so the recommender must filter.
                stock = 0 if roll < 0.04 else rng.randint(12, 600)
                active = not (0.04 <= roll < 0.065)
                pop = base.popularity * rng.lognormvariate(0, 0.45)
                out.append(ProductSpec(sku, name_zh, name_en, base.category, _shelf_price(price), stock, active,
                                       base.cadence, base.season, pop, base.max_qty))
    return out


def gift_skus(products: list[ProductSpec]) -> tuple[str, str]:
    """The SKUs of the points-exchange tote bag and of the platinum birthday gift set."""
    tote = next(p.sku for p in products if p.name_en.endswith("canvas tote bag"))
    gift_set = next(p.sku for p in products if "skincare gift set" in p.name_en)
    return tote, gift_set


# ---------------------------------------------------------------------------
# Calendar: festivals and seasons
# ---------------------------------------------------------------------------


def _festival(table: dict[int, date], year: int, fallback: tuple[int, int]) -> date:
    # Outside the table, a rough date keeps the demo working (only the peak moves a little).
    return table.get(year, date(year, *fallback))


def _near(d: date, peak: date, before: int, after: int = 0) -> bool:
    return -after <= (peak - d).days <= before


def _season_weight(tag: str, d: date) -> float:
    """How much more (or less) a product with seasonality ``tag`` sells on day ``d``."""
    if not tag:
        return 1.0
    m = d.month
    sf = _festival(SPRING_FESTIVAL, d.year, (2, 1))
    sf_next = _festival(SPRING_FESTIVAL, d.year + 1, (2, 1))
    ma = _festival(MID_AUTUMN, d.year, (9, 20))
    in_sf = _near(d, sf, 25, 3) or _near(d, sf_next, 25, 3)
    is_618, is_d11 = m == 6 and d.day <= 18, m == 11 and d.day <= 11
    if tag == "summer":
        return {6: 1.8, 7: 2.0, 8: 1.8, 5: 1.3, 9: 1.2}.get(m, 0.7 if m in (12, 1, 2) else 1.0)
    if tag == "winter":
        return {12: 1.9, 1: 1.9, 11: 1.5, 2: 1.5, 3: 1.0, 10: 1.0}.get(m, 0.35)
    if tag == "spring_festival":
        return 6.0 if in_sf else 0.4
    if tag == "mid_autumn":
        return 9.0 if _near(d, ma, 25) else 0.03
    if tag == "valentine":
        return 4.0 if (m == 2 and 7 <= d.day <= 14) or (m == 5 and 13 <= d.day <= 20) else 0.8
    if tag == "shopping":
        return 2.5 if is_618 or is_d11 else 0.9
    if tag == "festival":
        if in_sf or _near(d, ma, 20) or is_d11:
            return 4.0
        if is_618 or (m == 12 and 15 <= d.day <= 24) or (m == 5 and 13 <= d.day <= 20):
            return 2.5
        return 0.4
    return 1.0


def _category_season(category: str, d: date) -> float:
    """How much of a basket's choice leans to ``category`` on day ``d``."""
    if category == "gifts":
        return _season_weight("festival", d) * 0.6 + _season_weight("spring_festival", d) * 0.4
    if category == "drinks":
        return _season_weight("summer", d)
    if category in ("skincare", "makeup"):
        return 1.0 + 0.5 * (_season_weight("shopping", d) > 1)
    return 1.0


def _trip_boost(d: date, online: bool) -> float:
    """Shopping trips become more frequent before Spring Festival, and online around 618 and Double 11."""
    sf = _festival(SPRING_FESTIVAL, d.year, (2, 1))
    sf_next = _festival(SPRING_FESTIVAL, d.year + 1, (2, 1))
    boost = 1.0
    if _near(d, sf, 21) or _near(d, sf_next, 21):
        boost += 0.4
    if _near(d, sf, 0, 6):  # the holiday week itself is quiet
        boost -= 0.4
    if _big_sale(d):
        boost += 0.9 if online else 0.15
    return boost


def _big_sale(d: date) -> bool:
    """The 618 and Double 11 shopping festivals (mostly online)."""
    return (d.month == 6 and d.day <= 18) or (d.month == 11 and d.day <= 11)


# ---------------------------------------------------------------------------
# People and their year of shopping (pure Python, no database)
# ---------------------------------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红梅鑫浩宇晨欣怡涵思雨佳琪轩诺嘉悦雅婷俊博"
_EN_NAMES = ("Lily", "Kevin", "Grace", "Jason", "Cindy", "Eric", "Vivian", "Leo", "Amy", "Tony", "Sophie", "Jack")
_PHONE_PREFIXES = tuple(range(130, 140)) + (150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 176, 177) + tuple(
    range(180, 190)
) + (198, 199)
_OPENID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

# Personas bias the Dirichlet draw of category affinities (alpha added per category).
_PERSONAS: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("young_family", 0.18, {"baby": 5, "dairy": 3.5, "home": 1.5, "snacks": 1, "personal_care": 1}),
    ("beauty", 0.18, {"skincare": 5, "makeup": 4, "personal_care": 1.5, "gifts": 0.5}),
    ("snacker", 0.15, {"snacks": 5, "drinks": 3.5, "dairy": 1}),
    ("household", 0.18, {"home": 4, "personal_care": 3.5, "dairy": 2, "drinks": 1}),
    ("fashion", 0.09, {"apparel": 5, "makeup": 1.5, "skincare": 1.5}),
    ("gifter", 0.07, {"gifts": 3, "snacks": 2, "drinks": 1.5, "skincare": 1}),
    ("generalist", 0.15, {}),
)
# Hours of the day (local) at the till and online, with relative weights.
_POS_HOURS = ((9, 3), (10, 5), (11, 7), (12, 9), (13, 7), (14, 5), (15, 5), (16, 6), (17, 8), (18, 10),
              (19, 10), (20, 8), (21, 4))
_WEB_HOURS = ((7, 2), (8, 3), (9, 3), (10, 4), (11, 4), (12, 6), (13, 5), (14, 4), (15, 4), (16, 4), (17, 4),
              (18, 5), (19, 6), (20, 8), (21, 10), (22, 9), (23, 5))


@dataclass
class Person:
    """A member-to-be and the shape of their year."""

    idx: int
    phone: str
    name: str | None
    birthday: date | None
    channel: str  # wechat | webchat
    external_id: str
    store: str | None  # the store whose QR code they scanned to join
    home: str
    joined: datetime
    persona: str
    lifecycle: str  # active | dormant | churned | one_off | never
    stop: datetime  # no purchases after this
    ambassador: bool = False
    referrer: int | None = None
    opt_out: datetime | None = None
    close: datetime | None = None


@dataclass
class OrderPlan:
    """One planned purchase; the external id is given once every order is in time order."""

    who: int
    at: datetime
    online: bool
    store: str | None
    items: list[tuple[str, int]]
    external_id: str = ""

    @property
    def source(self) -> str:
        return "shop" if self.online else "pos"


@dataclass(frozen=True)
class Event:
    at: datetime
    rank: int  # at the same instant: jobs (0) before members' acts (1)
    kind: str  # signup | order | return | birthday | opt_out | close | expire | review
    who: int  # a Person index, -1 for jobs
    data: Any = None


@dataclass
class Plan:
    """Everything the loader will write, in time order."""

    seed: int
    start: datetime
    end: datetime
    products: list[ProductSpec]
    people: list[Person]
    events: list[Event] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return sum(1 for e in self.events if e.kind == "order")


def _local(d: date, hour: int, minute: int) -> datetime:
    return datetime.combine(d, time(hour, minute), tzinfo=SHANGHAI).astimezone(timezone.utc)


def _weighted(rng: random.Random, pairs: tuple[tuple[Any, float], ...] | list[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for item, w in pairs:
        x -= w
        if x < 0:
            return item
    return pairs[-1][0]


class _Shelf:
    """Cached, seasonal choice of a category and of a product within it, per day of the plan."""

    def __init__(self, products: list[ProductSpec], start_day: date) -> None:
        self.products = products
        self.start_day = start_day
        self.by_cat: dict[str, list[ProductSpec]] = defaultdict(list)
        for p in products:
            self.by_cat[p.category].append(p)
        self._cum: dict[tuple[str, int], list[float]] = {}
        self._season: dict[tuple[str, int], float] = {}
        self._cat_season: dict[tuple[str, int], float] = {}
        self._boost: dict[int, tuple[float, float]] = {}

    def day(self, i: int) -> date:
        return self.start_day + timedelta(days=i)

    def boost(self, i: int) -> tuple[float, float]:
        """Trip-rate multipliers on day ``i``: in store, online."""
        b = self._boost.get(i)
        if b is None:
            d = self.day(i)
            b = self._boost[i] = (_trip_boost(d, False), _trip_boost(d, True))
        return b

    def season(self, tag: str, i: int) -> float:
        key = (tag, i)
        if key not in self._season:
            self._season[key] = _season_weight(tag, self.day(i))
        return self._season[key]

    def cat_season(self, cat: str, i: int) -> float:
        key = (cat, i)
        if key not in self._cat_season:
            self._cat_season[key] = _category_season(cat, self.day(i))
        return self._cat_season[key]

    def pick(self, rng: random.Random, cat: str, i: int) -> ProductSpec:
        key = (cat, i)
        cum = self._cum.get(key)
        items = self.by_cat[cat]
        if cum is None:
            cum, acc = [], 0.0
            for p in items:
                # Delisted items sold less before they went; still in the history.
                acc += p.popularity * self.season(p.season, i) * (1.0 if p.active else 0.4)
                cum.append(acc)
            self._cum[key] = cum
        return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _phone(rng: random.Random, taken: set[str]) -> str:
    while True:
        number = f"{rng.choice(_PHONE_PREFIXES)}{rng.randrange(10**8):08d}"
        if number not in taken:
            taken.add(number)
            return number


def _name(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.15:
        return None
    surname = rng.choice(_SURNAMES)
    if r < 0.22:
        return f"{rng.choice(_EN_NAMES)} {surname}"
    return surname + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _person(idx: int, seed: int, start: datetime, days: int, end: datetime, phones: set[str]) -> Person:
    rng = random.Random(f"demo:{seed}:person:{idx}")
    start_day = start.astimezone(SHANGHAI).date()
    # A third joined at the launch of the programme, the rest over the period, more of them lately.
    day = rng.randrange(min(30, days)) if rng.random() < 0.3 else int(days * rng.random() ** 0.8)
    day = min(day, days - 1)
    joined = _local(start_day + timedelta(days=day), rng.randint(10, 20), rng.randrange(60))
    home = _weighted(rng, [(s.code, s.weight) for s in STORES])
    channel = "wechat" if rng.random() < 0.78 else "webchat"
    scanned = rng.random() < (0.85 if channel == "wechat" else 0.3)
    ext = ("o" + "".join(rng.choice(_OPENID_ALPHABET) for _ in range(27)) if channel == "wechat"
           else f"web-{rng.getrandbits(64):016x}")
    birthday = None
    if rng.random() < 0.85:
        year = joined.year - rng.randint(18, 62)
        birthday = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    persona = _weighted(rng, [(name, w) for name, w, _ in _PERSONAS])
    r = rng.random()
    # Lifecycle decides when buying stops; the segment job reads it back from the orders.
    days_left = (end - joined).days
    if r < 0.04:
        lifecycle, stop = "never", joined
    elif r < 0.14:
        lifecycle, stop = "one_off", joined + timedelta(days=rng.uniform(0, 20))
    elif r < 0.28 and days_left > 200:
        lifecycle, stop = "churned", joined + timedelta(days=rng.uniform(15, days_left - 181))
    elif r < 0.42 and days_left > 70:
        lifecycle, stop = "dormant", end - timedelta(days=rng.uniform(60, min(175, days_left - 1)))
    else:
        lifecycle, stop = "active", end
    p = Person(idx, _phone(rng, phones), _name(rng), birthday, channel, ext, home if scanned else None, home,
               joined, persona, lifecycle, min(stop, end), ambassador=rng.random() < 0.03)
    if rng.random() < 0.06:
        p.opt_out = joined + (end - joined) * rng.random()
    if rng.random() < 0.004 and days_left > 40:
        p.close = joined + timedelta(days=rng.uniform(30, days_left - 1))
        p.stop = min(p.stop, p.close)
    return p


def _affinity(rng: random.Random, persona: str) -> dict[str, float]:
    boost = next(b for name, _, b in _PERSONAS if name == persona)
    # Sparse (alpha < 1) around a persona's categories; generalists spread their baskets.
    base = 0.35 if boost else 1.2
    raw = {c: rng.gammavariate(base + boost.get(c, 0.0), 1.0) for c in CATEGORIES}
    total = sum(raw.values()) or 1.0
    return {c: v / total for c, v in raw.items()}


def _routines(
    rng: random.Random, products: list[ProductSpec], aff: dict[str, float]
) -> list[tuple[ProductSpec, int, float]]:
    """Consumables the member re-buys: (product, units per buy, personal cadence in days)."""
    out: list[tuple[ProductSpec, int, float]] = []
    staples = [(q, aff[q.category] * q.popularity) for q in products if q.cadence and q.active]
    for _ in range(min(4, int(rng.expovariate(1 / 1.6)))):
        q = _weighted(rng, staples)
        if all(q.sku != r[0].sku for r in out):
            # Some stock up on weekly items: twice the quantity, half as often.
            stock_up = 2 if q.cadence < 10 and rng.random() < 0.5 else 1
            out.append((q, stock_up, q.cadence * stock_up * rng.lognormvariate(0, 0.25)))
    return out


def _till(rng: random.Random, home: str) -> str:
    """Mostly the home store, sometimes another in the same city, rarely one elsewhere."""
    city = next(s.city for s in STORES if s.code == home)
    same_city = [s.code for s in STORES if s.city == city and s.code != home]
    others = [s.code for s in STORES if s.code != home]
    r = rng.random()
    if r < 0.9 or not others:
        return home
    return rng.choice(same_city) if same_city and r < 0.97 else rng.choice(others)


def _shopping(p: Person, seed: int, shelf: _Shelf) -> list[OrderPlan]:
    """The member's orders: routine re-buys at their own cadence merged into seasonal trips."""
    if p.lifecycle == "never":
        return []
    rng = random.Random(f"demo:{seed}:shopping:{p.idx}")
    start_day = shelf.start_day
    first = (p.joined.astimezone(SHANGHAI).date() - start_day).days
    # stop is an instant, often the plan's end (a local midnight): the day before is the last day.
    last = ((p.stop - timedelta(microseconds=1)).astimezone(SHANGHAI).date() - start_day).days
    aff = _affinity(rng, p.persona)
    cats = list(aff)
    rate = rng.lognormvariate(math.log(0.3), 0.6) / 7  # discretionary trips per day
    online_share = rng.betavariate(1.2, 3.5)
    products = shelf.products
    by_pop = [(q, aff[q.category] * q.popularity) for q in products]
    favourites = [_weighted(rng, by_pop) for _ in range(rng.randint(3, 8))]
    routines = _routines(rng, products, aff) if p.lifecycle != "one_off" else []

    # Trip days: a Poisson process thinned by the calendar, plus the join-day purchase.
    trips: dict[int, list[tuple[str, int]]] = {}
    online: dict[int, bool] = {}
    if rng.random() < 0.7:
        trips[first] = []
        online[first] = False
    if p.lifecycle == "one_off":
        if rng.random() < 0.5 or not trips:
            d = min(last, first + rng.randrange(0, 20))
            trips.setdefault(d, [])
            online.setdefault(d, rng.random() < online_share)
    else:
        for d in range(first, last + 1):
            in_store, web = shelf.boost(d)
            if rng.random() < rate * ((1 - online_share) * in_store + online_share * web):
                trips.setdefault(d, [])
                share = online_share * (1.8 if _big_sale(shelf.day(d)) else 1.0)
                online.setdefault(d, rng.random() < min(0.9, share))
    # Routine re-buys join a trip within three days, or make a trip of their own.
    days_sorted = sorted(trips)
    for q, mult, cadence in routines:
        t = first + rng.uniform(0, cadence)
        while t <= last:
            if rng.random() < 0.9:  # now and then a re-buy is skipped (bought elsewhere, still stocked)
                d = int(t)
                k = bisect.bisect_left(days_sorted, d - 3)
                if k < len(days_sorted) and days_sorted[k] <= d + 3:
                    d = days_sorted[k]
                else:
                    bisect.insort(days_sorted, d)
                    trips[d] = []
                    online[d] = rng.random() < online_share * 0.5
                trips[d].append((q.sku, mult * rng.randint(1, q.max_qty)))
            t += cadence * max(0.5, rng.gauss(1.0, 0.12))
    # Discretionary picks: favourites, or a category by affinity and season, then a product.
    plans = []
    for d in sorted(trips):
        basket = trips[d]
        n = 1
        while n < 8 and rng.random() < 0.5:
            n += 1
        if basket and rng.random() < 0.5:
            n -= 1  # a routine trip often carries fewer extras
        for _ in range(n):
            if rng.random() < 0.35:
                q = _weighted(rng, [(f, shelf.season(f.season, d)) for f in favourites])
            else:
                cat = _weighted(rng, [(c, aff[c] * shelf.cat_season(c, d)) for c in cats])
                q = shelf.pick(rng, cat, d)
            basket.append((q.sku, rng.randint(1, q.max_qty) if rng.random() < 0.3 else 1))
        merged: dict[str, int] = {}
        for sku, qty in basket:
            merged[sku] = merged.get(sku, 0) + qty
        is_online = online.get(d, False)
        hour, minute = _weighted(rng, _WEB_HOURS if is_online else _POS_HOURS), rng.randrange(60)
        at = _local(shelf.day(d), hour, minute)
        if at <= p.joined:  # bought right after joining at the till
            at = p.joined + timedelta(minutes=rng.randint(2, 25))
        if at >= p.stop:  # the join-day purchase of a member who stopped at once, or closed
            continue
        store = None if is_online else _till(rng, p.home)
        plans.append(OrderPlan(p.idx, at, is_online, store, sorted(merged.items())))
    return plans


def _referrals(people: list[Person], seed: int) -> None:
    """Some members joined through a friend's code: earlier members, ambassadors and neighbours first."""
    rng = random.Random(f"demo:{seed}:referrals")
    by_join = sorted(people, key=lambda q: (q.joined, q.idx))
    for k, p in enumerate(by_join):
        if k < max(5, len(people) // 20) or rng.random() >= 0.12:
            continue
        for _ in range(50):  # rejection sampling by weight, cheap for thousands of members
            cand = by_join[rng.randrange(k)]
            w = (8 if cand.ambassador else 1) * (3 if cand.home == p.home else 1)
            if cand.close is None and rng.random() * 24 < w:
                p.referrer = cand.idx
                p.channel = "wechat" if rng.random() < 0.9 else p.channel
                break


def _leap_birthdays(people: list[Person], seed: int) -> None:
    """A few members were born on 29 February, so the birthday job's edge case is in the data."""
    rng = random.Random(f"demo:{seed}:leap")
    with_birthday = [p for p in people if p.birthday is not None]
    for p in rng.sample(with_birthday, min(len(with_birthday), max(2, len(people) // 400))):
        p.birthday = date(rng.choice(range(1968, 2005, 4)), 2, 29)


def make_plan(n_members: int = 2000, seed: int = 42, until: date | None = None, days: int = 450) -> Plan:
    """Draw stores, catalogue, members and every event up to the local midnight starting ``until``.

    ``until`` defaults to today (Asia/Shanghai); the history covers ``days``
    days before it, long enough by default (about 15 months) for the oldest
    points to have expired and a tier review to have happened.
    """
    if n_members < 1:
        raise ValueError("n_members must be at least 1")
    if days < 30:
        raise ValueError("days must be at least 30")
    until = until or datetime.now(SHANGHAI).date()
    end = local_midnight(until).astimezone(timezone.utc)
    start = end - timedelta(days=days)
    products = catalogue(seed)
    shelf = _Shelf(products, start.astimezone(SHANGHAI).date())
    phones: set[str] = set()
    people = [_person(i, seed, start, days, end, phones) for i in range(n_members)]
    _referrals(people, seed)
    _leap_birthdays(people, seed)
    plan = Plan(seed, start, end, products, people)
    ev = plan.events
    returns_rng = random.Random(f"demo:{seed}:returns")
    all_orders: list[OrderPlan] = []
    for p in people:
        ev.append(Event(p.joined, 1, "signup", p.idx, p))
        all_orders.extend(_shopping(p, seed, shelf))
        if p.birthday is not None:
            for year in range(start.year, end.year + 1):
                at = _local(gifts.birthday_in_year(p.birthday, year), 9, 0)
                if p.joined < at < end and (p.close is None or at < p.close):
                    ev.append(Event(at, 1, "birthday", p.idx, year))
        if p.opt_out is not None:
            ev.append(Event(p.opt_out, 1, "opt_out", p.idx))
        if p.close is not None:
            ev.append(Event(p.close, 1, "close", p.idx))
    # Receipt numbers count per store (or the web shop) and local day, in time order.
    all_orders.sort(key=lambda o: (o.at, o.who))
    counters: dict[tuple[str, date], int] = defaultdict(int)
    prices = {q.sku: q.price_fen for q in products}
    for o in all_orders:
        d = o.at.astimezone(SHANGHAI).date()
        key = (o.store or "WEB", d)
        counters[key] += 1
        o.external_id = f"{key[0]}-{d:%Y%m%d}-{counters[key]:04d}"
        ev.append(Event(o.at, 1, "order", o.who, o))
        if not o.online and returns_rng.random() < 0.012:
            sku, qty = returns_rng.choice(o.items)
            back = o.at + timedelta(days=returns_rng.uniform(1, 10))
            person = people[o.who]
            if back < end and (person.close is None or back < person.close):
                ev.append(Event(back, 1, "return", o.who, (o, sku, qty, prices[sku])))
    # The daily expiry job just after local midnight, and the tier reviews at their boundaries.
    day0 = start.astimezone(SHANGHAI).date()
    for i in range(1, days + 1):
        ev.append(Event(_local(day0 + timedelta(days=i), 0, 10) if i < days else end, 0, "expire", -1))
    for b in tiers.boundaries(start, end):
        ev.append(Event(b, 0, "review", -1))
    ev.sort(key=lambda e: (e.at, e.rank, e.who, e.kind))
    return plan


# ---------------------------------------------------------------------------
# Campaigns
# ---------------------------------------------------------------------------

#: The campaign that is left nearly out of stock: claims stop when this few remain.
FLASH_CODE = "FLASH-199-50"
_FLASH_KEEP = 3


def _last_before(end_day: date, when: Callable[[int], date], margin: int) -> date:
    """The latest yearly date ``when(year)`` at least ``margin`` days before ``end_day``."""
    d = when(end_day.year)
    return d if d <= end_day - timedelta(days=margin) else when(end_day.year - 1)


def campaigns(plan: Plan) -> list[dict[str, Any]]:
    """The demo's coupon campaigns as :func:`loyalty.coupons.service.create_campaign` fields."""
    tote, gift_set = gift_skus(plan.products)
    end_day = plan.end.astimezone(SHANGHAI).date()
    sf = _last_before(end_day, lambda y: _festival(SPRING_FESTIVAL, y, (2, 1)), 7)
    s618 = _last_before(end_day, lambda y: date(y, 6, 1), 20)
    d11 = _last_before(end_day, lambda y: date(y, 11, 1), 20)

    def window(first: date, last: date) -> dict[str, datetime]:
        # Claims through the last local day; coupons usable three more days.
        return {"claim_start": local_midnight(first), "claim_end": local_midnight(last + timedelta(days=1)),
                "valid_until": local_midnight(last + timedelta(days=4))}

    n = len(plan.people)
    return [
        dict(code="WELCOME", kind="threshold", name_zh="新人礼 满50减10", name_en="Welcome gift: 10 off 50",
             threshold_fen=5000, discount_fen=1000, valid_days=30, audience="welcome"),
        dict(code="BIRTHDAY-SILVER", kind="threshold", name_zh="银卡生日礼 满100减30",
             name_en="Silver birthday: 30 off 100", threshold_fen=10000, discount_fen=3000, valid_days=30,
             audience="birthday"),
        dict(code="BIRTHDAY-GOLD", kind="percent", name_zh="金卡生日礼 全场8折", name_en="Gold birthday: 20% off",
             percent_off=20, valid_days=30, audience="birthday"),
        dict(code="BIRTHDAY-PLATINUM", kind="gift", name_zh="铂金生日礼 护肤礼盒",
             name_en="Platinum birthday: skincare gift set", gift_sku=gift_set, valid_days=30, audience="birthday"),
        dict(code="GOODWILL-20", kind="threshold", name_zh="客服关怀券 无门槛减20",
             name_en="With our apologies: 20 off", threshold_fen=0, discount_fen=2000, valid_days=30,
             per_member_limit=0, audience="goodwill"),
        dict(code="SPRING-300-50", kind="threshold", name_zh="年货节 满300减50",
             name_en="New Year shopping: 50 off 300",
             threshold_fen=30000, discount_fen=5000, total_stock=max(20, n // 4),
             **window(sf - timedelta(days=28), sf - timedelta(days=1))),
        dict(code="618-200-30", kind="threshold", name_zh="618 满200减30", name_en="618 sale: 30 off 200",
             threshold_fen=20000, discount_fen=3000, total_stock=max(20, n // 4),
             **window(s618, s618 + timedelta(days=17))),
        dict(code="D11-88", kind="percent", name_zh="双11 全场88折", name_en="Double 11: 12% off",
             percent_off=12, total_stock=max(20, n // 4), **window(d11, d11 + timedelta(days=10))),
        dict(code="SAVE10", kind="threshold", name_zh="满99减10", name_en="10 off 99",
             threshold_fen=9900, discount_fen=1000, valid_days=14, per_member_limit=2),
        dict(code="POINTS-500-20", kind="threshold", name_zh="500积分兑20元无门槛券", name_en="20 off for 500 points",
             threshold_fen=0, discount_fen=2000, valid_days=30, points_cost=500, per_member_limit=3),
        dict(code="POINTS-TOTE", kind="gift", name_zh="800积分兑帆布袋", name_en="Canvas tote for 800 points",
             gift_sku=tote, valid_days=30, points_cost=800, total_stock=max(30, n // 10)),
        dict(code="GOLD-85", kind="percent", name_zh="金卡专享 85折", name_en="Gold and above: 15% off",
             percent_off=15, valid_days=14, min_tier="gold"),
        dict(code=FLASH_CODE, kind="threshold", name_zh="限量抢 满199减50", name_en="Limited: 50 off 199",
             threshold_fen=19900, discount_fen=5000, total_stock=max(_FLASH_KEEP + 5, n // 40),
             claim_start=plan.end - timedelta(days=30), claim_end=plan.end + timedelta(days=14),
             valid_until=plan.end + timedelta(days=21)),
    ]


# ---------------------------------------------------------------------------
# Loading a plan through the services
# ---------------------------------------------------------------------------


@dataclass
class _Held:
    """A coupon a simulated member holds and may use at a later purchase."""

    code: str
    kind: str
    threshold_fen: int
    discount_fen: int
    percent_off: int
    gift_sku: str | None
    valid_from: datetime
    valid_until: datetime

    @classmethod
    def of(cls, v: coupons.CouponView) -> _Held:
        c = v.campaign
        return cls(v.code, c.kind, yuan_to_fen(c.threshold), yuan_to_fen(c.discount), c.percent_off, c.gift_sku,
                   v.valid_from, v.valid_until)

    def value(self, subtotal: int, prices: dict[str, int]) -> int:
        """What the coupon is worth on this basket, in fen."""
        if self.kind == "threshold":
            return min(self.discount_fen, subtotal)
        if self.kind == "percent":
            return subtotal * self.percent_off // 100
        return prices.get(self.gift_sku or "", 0)


@dataclass
class SeedReport:
    """What a seed run wrote, and how long it took."""

    stores: int
    products: int
    members: int
    orders: int
    returns: int
    order_lines: int
    referrals: int
    coupons_issued: int
    coupons_redeemed: int
    points_earned: int
    points_expired: int
    tier_changes: int
    tiers: dict[str, int]
    plan_seconds: float = 0.0
    load_seconds: float = 0.0


class _Loader:
    """Replays a plan through the services; keeps only what later events need to know."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ids: dict[int, int] = {}  # person index -> member id
        self.codes: dict[int, str] = {}  # person index -> referral code
        self.held: dict[int, list[_Held]] = defaultdict(list)
        self.closed: set[int] = set()
        self.paid: dict[str, int] = {}  # order external id -> amount paid (fen), for returns
        self.prices = {p.sku: p.price_fen for p in plan.products}
        self.gift_of: dict[str, str | None] = {}  # campaign code -> gift SKU

    def setup(self, s: Session) -> None:
        """Stores, products and campaigns."""
        s.add_all(Store(code=x.code, name_zh=x.name_zh, name_en=x.name_en, city=x.city, active=True) for x in STORES)
        s.add_all(
            Product(sku=p.sku, name_zh=p.name_zh, name_en=p.name_en, category=p.category, price_fen=p.price_fen,
                    stock=p.stock, active=p.active)
            for p in self.plan.products
        )
        s.flush()
        for fields in campaigns(self.plan):
            coupons.create_campaign(s, actor="demo", **fields)
            self.gift_of[fields["code"]] = fields.get("gift_sku")

    def batch(self, s: Session, events: list[Event]) -> None:
        for e in events:
            if e.who >= 0 and (e.who in self.closed or (e.kind != "signup" and e.who not in self.ids)):
                continue
            getattr(self, "_" + e.kind)(s, e)

    def _signup(self, s: Session, e: Event) -> None:
        p: Person = e.data
        code = self.codes.get(p.referrer) if p.referrer is not None and p.referrer not in self.closed else None
        res = membership.signup(
            s, phone=p.phone, consent=True, name=p.name, birthday=p.birthday, store_code=p.store,
            referral_code=code, channel=p.channel, external_id=p.external_id, now=p.joined,
        )
        self.ids[p.idx] = res.card.id
        self.codes[p.idx] = res.card.referral_code
        if res.welcome_coupon:
            self._remember(s, p.idx, res.welcome_coupon, p.joined)

    def _remember(self, s: Session, who: int, code: str, at: datetime) -> None:
        for v in coupons.member_coupons(s, self.ids[who], now=at):
            if v.code == code:
                self.held[who].append(_Held.of(v))

    def _order(self, s: Session, e: Event) -> None:
        o: OrderPlan = e.data
        mid = self.ids[o.who]
        rng = random.Random(f"demo:{self.plan.seed}:{o.external_id}")
        lines = [(sku, qty, self.prices[sku]) for sku, qty in o.items]
        subtotal = sum(q * p for _, q, p in lines)
        if rng.random() < 0.12:
            self._claim(s, o, mid, rng)
        discount = 0
        used = self._use_coupon(o, subtotal, rng)
        if used is not None:
            r = coupons.redeem(s, used.code, order_ref=o.external_id, order_amount_fen=subtotal,
                               store_code=o.store, now=o.at)
            discount = yuan_to_fen(r.discount)
            if r.gift_sku:
                lines.append((r.gift_sku, 1, 0))
        amount = subtotal - discount
        payload: dict[str, Any] = {
            "external_id": o.external_id, "placed_at": o.at.isoformat(), "amount": fen_to_yuan(amount),
            "member_id": mid, "channel": "online" if o.online else "pos",
            "lines": [{"sku": sku, "qty": q, "unit_price": fen_to_yuan(p)} for sku, q, p in lines],
        }
        if o.store:
            payload["store_code"] = o.store
        orders.record_order(s, o.source, payload, now=o.at)
        self.paid[o.external_id] = amount

    def _claim(self, s: Session, o: OrderPlan, mid: int, rng: random.Random) -> None:
        """At the till or in the shop, the member claims one of the offers open now."""
        open_now = [x.campaign for x in coupons.offers(s, mid, now=o.at) if x.claimable]
        flash = [c for c in open_now if c.code == FLASH_CODE and (c.left or 0) > _FLASH_KEEP]
        exchange = [c for c in open_now if c.points_cost]
        free = [c for c in open_now if not c.points_cost and c.code != FLASH_CODE]
        if flash and rng.random() < 0.6:
            pick = flash[0]
        elif exchange and rng.random() < 0.4:
            pick = rng.choice(exchange)
        elif free:
            pick = rng.choice(free)
        else:
            return
        got = coupons.claim(s, mid, pick.code, key=o.external_id, now=o.at)
        self.held[o.who].append(_Held.of(got.coupon))

    def _use_coupon(self, o: OrderPlan, subtotal: int, rng: random.Random) -> _Held | None:
        held = [h for h in self.held[o.who] if o.at < h.valid_until]
        self.held[o.who] = held
        usable = [h for h in held if h.valid_from <= o.at and subtotal >= h.threshold_fen]
        if not usable or rng.random() > 0.6:
            return None
        # Ties go to the coupon held longest (never to the code: codes are random, the plan is not).
        best = max(usable, key=lambda h: h.value(subtotal, self.prices))
        held.remove(best)
        return best

    def _return(self, s: Session, e: Event) -> None:
        o, sku, qty, price = e.data
        paid = self.paid.pop(o.external_id, 0)
        amount = min(qty * price, paid)
        if amount <= 0:
            return
        payload: dict[str, Any] = {
            "external_id": f"{o.external_id}-R", "placed_at": e.at.isoformat(), "amount": fen_to_yuan(amount),
            "original_external_id": o.external_id, "channel": "online" if o.online else "pos",
            "lines": [{"sku": sku, "qty": qty, "unit_price": fen_to_yuan(price)}],
        }
        if o.store:
            payload["store_code"] = o.store
        orders.record_return(s, o.source, payload, now=e.at)

    def _birthday(self, s: Session, e: Event) -> None:
        # As gifts.grant_birthday does (same request key, so the live job never grants twice),
        # but at the simulated time: grant_birthday itself always uses the clock.
        m = s.get(Member, self.ids[e.who])
        assert m is not None
        campaign = settings().tier(m.tier).birthday_coupon
        if campaign:
            got = coupons.grant(s, m.id, campaign, key=f"birthday:{e.data}", now=e.at)
            self.held[e.who].append(_Held.of(got.coupon))

    def _opt_out(self, s: Session, e: Event) -> None:
        members.set_marketing(s, self.ids[e.who], False, actor="member", now=e.at)

    def _close(self, s: Session, e: Event) -> None:
        membership.close_account(s, self.ids[e.who], actor="member", now=e.at)
        self.closed.add(e.who)
        self.held.pop(e.who, None)

    def _expire(self, s: Session, e: Event) -> None:
        for mid in points.members_with_due_lots(s, e.at):
            points.expire_due_for(s, mid, e.at)

    def _review(self, s: Session, e: Event) -> None:
        for mid in tiers.members_due_for_review(s, e.at):
            tiers.review_member(s, mid, e.at)


def is_empty(s: Session) -> bool:
    """Whether the database has no stores yet (the demo seeds only an empty database)."""
    return s.execute(select(Store.id).limit(1)).first() is None


def load(plan: Plan, *, batch: int = 500, progress: Callable[[int], None] | None = None) -> SeedReport:
    """Write a plan through the services, ``batch`` events per transaction, then report what is there.

    The database must be migrated and empty (see :func:`is_empty`).
    """
    t0 = _time.perf_counter()
    loader = _Loader(plan)

    def setup(s: Session) -> None:
        if not is_empty(s):
            raise RuntimeError("the database already has stores; the demo seeds only an empty database")
        loader.setup(s)

    # No retries: a batch is not safe to re-run against the loader's memory, and nothing else writes.
    db.run(setup, attempts=1)
    for i in range(0, len(plan.events), batch):
        chunk = plan.events[i : i + batch]
        db.run(loader.batch, chunk, attempts=1)
        if progress is not None:
            progress(len(chunk))
    report = db.run(_report, readonly=True)
    report.load_seconds = _time.perf_counter() - t0
    return report


def seed_demo(
    n_members: int = 2000,
    seed: int = 42,
    until: date | None = None,
    days: int = 450,
    *,
    progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Plan and load the demo in one call (the CLI splits the two to size its progress bar)."""
    t0 = _time.perf_counter()
    plan = make_plan(n_members, seed, until, days)
    planned = _time.perf_counter() - t0
    report = load(plan, progress=progress)
    report.plan_seconds = planned
    return report


def _count(s: Session, q: Any) -> int:
    return int(s.execute(q).scalar_one() or 0)


def _report(s: Session) -> SeedReport:
    n = select(func.count())
    return SeedReport(
        stores=_count(s, n.select_from(Store)),
        products=_count(s, n.select_from(Product)),
        members=_count(s, n.select_from(Member)),
        orders=_count(s, n.select_from(Order).where(Order.kind == "order")),
        returns=_count(s, n.select_from(Order).where(Order.kind == "return")),
        order_lines=_count(s, n.select_from(OrderLine)),
        referrals=_count(s, n.select_from(Referral)),
        coupons_issued=_count(s, n.select_from(Coupon)),
        coupons_redeemed=_count(s, n.select_from(Coupon).where(Coupon.status == "redeemed")),
        points_earned=_count(s, select(func.sum(LedgerEntry.delta)).where(LedgerEntry.kind == "earn")),
        points_expired=-_count(s, select(func.sum(LedgerEntry.delta)).where(LedgerEntry.kind == "expire")),
        tier_changes=_count(s, n.select_from(TierChange)),
        tiers=dict(s.execute(select(Member.tier, func.count()).where(Member.status == "active")
                             .group_by(Member.tier).order_by(Member.tier)).all()),
    )


# What the digest covers: everything the plan decides. Left out on purpose: referral and
# coupon codes (drawn by the services from ``secrets``) and wall-clock columns (audit times,
# campaign creation).
_DIGEST: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (Store, ("code", "name_zh", "name_en", "city", "active")),
    (Product, ("sku", "name_zh", "name_en", "category", "price_fen", "stock", "active")),
    (CouponCampaign, ("code", "kind", "threshold_fen", "discount_fen", "percent_off", "gift_sku", "total_stock",
                      "issued", "claim_start", "claim_end", "valid_until", "valid_days", "points_cost", "min_tier",
                      "audience")),
    (Member, ("id", "phone", "name", "birthday", "referred_by_id", "store_id", "join_channel", "tier",
              "tier_reviewed_at", "points_balance", "marketing_opt_in", "status", "created_at", "closed_at")),
    (Order, ("id", "source", "external_id", "kind", "original_id", "member_id", "store_id", "channel", "placed_at",
             "amount_fen", "points")),
    (OrderLine, ("order_id", "sku", "qty", "unit_price_fen")),
    (LedgerEntry, ("member_id", "kind", "delta", "balance_after", "growth", "shortfall", "order_id", "idem_key",
                   "created_at")),
    (PointsLot, ("member_id", "entry_id", "amount", "remaining", "earned_at", "expires_at")),
    (TierChange, ("member_id", "from_tier", "to_tier", "reason", "growth", "changed_at")),
    (Coupon, ("campaign_id", "member_id", "request_key", "status", "claimed_at", "valid_from", "valid_until",
              "points_spent", "redeemed_at", "redeemed_ref")),
    (Referral, ("referrer_id", "referee_id", "status", "created_at", "rewarded_at")),
)


def _rows(s: Session) -> Iterator[str]:
    for model, cols in _DIGEST:
        yield model.__tablename__
        q = select(*(getattr(model, c) for c in cols)).order_by(model.__table__.primary_key.columns.values()[0])
        for row in s.execute(q):
            yield "|".join(map(str, row))


def digest(s: Session) -> str:
    """A SHA-256 over the seeded data that the plan determines; equal seeds give equal digests."""
    h = hashlib.sha256()
    for line in _rows(s):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()
