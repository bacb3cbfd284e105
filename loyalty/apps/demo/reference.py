"""Reference tables: stores, a bilingual catalogue, festival dates (reused by the bot and the recommender)."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

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
    season: str = ""  # a seasonality tag, see season_weight
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
