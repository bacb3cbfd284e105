from datetime import datetime, timezone

from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.points import service as points


def test_signup_order_claim_redeem(engine):
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    db.run(coupons.create_campaign, code="C20", name_zh="满100减20", name_en="20 off 100", kind="threshold",
           threshold_fen=10000, discount_fen=2000, total_stock=10, valid_days=30, points_cost=0)
    sign = db.run(membership.signup, phone="+86 138-0013-8000", consent=True, channel="webchat", external_id="v1",
                  now=now)
    assert sign.card.phone_masked == "138****8000"
    res = db.run(orders.record_order, "pos", {"external_id": "A1", "placed_at": now.isoformat(), "amount": "128.50",
                                              "member_id": sign.card.id}, now=now)
    assert res["points_earned"] == 128 and res["balance"] == 128
    again = db.run(orders.record_order, "pos", {"external_id": "A1", "placed_at": now.isoformat(), "amount": "128.50",
                                                "member_id": sign.card.id}, now=now)
    assert again["replayed"] and again["points_earned"] == 128
    cl = db.run(coupons.claim, sign.card.id, "C20", key="k1", now=now)
    r = db.run(coupons.redeem, cl.coupon.code, order_ref="X", order_amount_fen=15000, now=now)
    assert r.discount == "20.00"
    summ = db.run(points.summary, sign.card.id, now=now)
    assert summ.balance == 128 and summ.recent[0].delta == 128
