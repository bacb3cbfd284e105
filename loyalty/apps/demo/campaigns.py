"""The demo's coupon campaigns, dated relative to the plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from loyalty.apps.demo.plan import Plan
from loyalty.apps.demo.reference import SPRING_FESTIVAL, gift_skus
from loyalty.apps.demo.seasons import festival
from loyalty.common import local_midnight
from loyalty.config import SHANGHAI

#: The campaign that is left nearly out of stock: claims stop when this few remain.
FLASH_CODE = "FLASH-199-50"
FLASH_KEEP = 3


def _last_before(end_day: date, when: Callable[[int], date], margin: int) -> date:
    """The latest yearly date ``when(year)`` at least ``margin`` days before ``end_day``."""
    d = when(end_day.year)
    return d if d <= end_day - timedelta(days=margin) else when(end_day.year - 1)


def campaigns(plan: Plan) -> list[dict[str, Any]]:
    """The demo's coupon campaigns as :func:`loyalty.coupons.service.create_campaign` fields."""
    tote, gift_set = gift_skus(plan.products)
    end_day = plan.end.astimezone(SHANGHAI).date()
    sf = _last_before(end_day, lambda y: festival(SPRING_FESTIVAL, y, (2, 1)), 7)
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
             threshold_fen=19900, discount_fen=5000, total_stock=max(FLASH_KEEP + 5, n // 40),
             claim_start=plan.end - timedelta(days=30), claim_end=plan.end + timedelta(days=14),
             valid_until=plan.end + timedelta(days=21)),
    ]
