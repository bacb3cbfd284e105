from datetime import datetime, timedelta, timezone

from actions.recommend import ActionRecommend
from loyalty import db
from loyalty.catalogue.models import Product
from loyalty.orders import service as orders
from tests.actions.conftest import run

NOW = datetime.now(timezone.utc)


def _catalogue(s):  # type: ignore[no-untyped-def]
    s.add_all([
        Product(sku="MILK", name_zh="鲜牛奶 1L", name_en="Fresh milk 1L", category="dairy", price_fen=1500, stock=50),
        Product(sku="CREAM", name_zh="保湿面霜", name_en="Moisturising cream", category="skincare",
                price_fen=16800, stock=10),
        Product(sku="SERUM", name_zh="修护精华", name_en="Repair serum", category="skincare", price_fen=29900,
                stock=0),
        Product(sku="CHIPS", name_zh="海苔薯片", name_en="Seaweed chips", category="snacks", price_fen=900, stock=80),
    ])


def test_member_who_buys_milk_weekly_gets_milk_first(shop):
    db.run(_catalogue)
    for week in range(6):
        at = (NOW - timedelta(days=7 * week + 1)).isoformat()
        db.run(orders.record_order, "pos", {"external_id": f"M{week}", "placed_at": at, "amount": "15.00",
                                            "member_id": shop["member_id"],
                                            "lines": [{"sku": "MILK", "qty": 1, "unit_price": "15.00"}]})
    r = run(ActionRecommend(), intent="recommend", text="推荐点东西")
    lines = r.message("utter_recommendations")["product_lines"].splitlines()
    assert "鲜牛奶" in lines[0]
    assert all("修护精华" not in line for line in lines)  # out of stock never shown


def test_category_named_narrows_and_guest_gets_best_sellers(shop):
    db.run(_catalogue)
    text = "推荐一下护肤品"
    r = run(ActionRecommend(), sender="web-guest", intent="recommend", text=text,
            entities=[{"entity": "product_category", "value": "skincare", "start": 4, "end": 7}])
    m = r.message("utter_recommendations_for")
    assert m["wanted"] == "护肤品"
    assert m["product_lines"].splitlines() and all("面霜" in line for line in m["product_lines"].splitlines())
    assert r.slot("product_category") is None
