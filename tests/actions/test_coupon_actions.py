from sqlalchemy import func, select

from actions.coupons import (
    ActionClaimCoupon,
    ActionConfirmExchange,
    ActionExchangeCoupon,
    ActionListCoupons,
    ActionMyCoupons,
    _index,
)
from loyalty import db
from loyalty.coupons.models import Coupon, CouponCampaign
from loyalty.members.models import Member
from tests.actions.conftest import run


def _coupons(member_id, code=None):
    with db.session() as s:
        q = select(func.count()).select_from(Coupon).where(Coupon.member_id == member_id)
        if code:
            q = q.join(CouponCampaign).where(CouponCampaign.code == code)
        return s.execute(q).scalar_one()


def test_list_shows_claimable_first_with_buttons_and_remembers_order(shop):
    r = run(ActionListCoupons())
    m = r.message("utter_claimable_coupons")
    lines = m["coupon_lines"].splitlines()
    assert lines[0].startswith("1") and "满100减20" in m["coupon_lines"]
    assert "金卡专享" in lines[-1]  # not claimable: listed last, with its reason
    assert all(b["payload"].startswith("/claim_coupon") for b in m["buttons"])
    assert "GOLDONLY" not in [b["payload"].split('"')[-2] for b in m["buttons"]]
    offered = r.slot("offered_campaigns")
    assert offered[-1] == "GOLDONLY" and "SAVE20" in offered


def test_claim_by_number_then_limit_explained(shop):
    offered = run(ActionListCoupons()).slot("offered_campaigns")
    n = offered.index("SAVE20") + 1
    r = run(ActionClaimCoupon(), slots={"coupon_choice": str(n), "offered_campaigns": offered}, message_id="a")
    assert r.message("utter_coupon_claimed")["coupon_name"] == "满100减20"
    assert _coupons(shop["member_id"], "SAVE20") == 1
    again = run(ActionClaimCoupon(), slots={"coupon_choice": "SAVE20", "offered_campaigns": offered}, message_id="b")
    assert again.responses == ["utter_claim_refused_limit_reached"]
    assert _coupons(shop["member_id"], "SAVE20") == 1


def test_claim_by_a_number_word_or_头一张(shop):
    offered = run(ActionListCoupons()).slot("offered_campaigns")
    slots = {"offered_campaigns": offered}
    first = run(ActionClaimCoupon(), slots={**slots, "coupon_choice": "one"}, message_id="w1")
    assert first.responses[0] == "utter_coupon_claimed"
    assert _coupons(shop["member_id"], offered[0]) == 1
    second = run(ActionClaimCoupon(), slots={**slots, "coupon_choice": "头一张"}, message_id="z1")
    assert second.responses == first.responses or second.responses == ["utter_claim_refused_limit_reached"]
    assert _index("two") == 2 and _index("phone") is None
    assert _index("２") == 2 and _index("²") is None  # a phone's full-width digit; a superscript is no position


def test_claim_is_idempotent_per_message(shop):
    for _ in range(2):
        run(ActionClaimCoupon(), slots={"coupon_choice": "PCT15"}, message_id="same")
    assert _coupons(shop["member_id"], "PCT15") == 1


def test_claim_by_words(shop):
    r = run(ActionClaimCoupon(), slots={"coupon_choice": "the 20 off one", "language": "en"}, message_id="w")
    assert r.message("utter_coupon_claimed")["coupon_name"] == "20 off 100"
    r = run(ActionClaimCoupon(), slots={"coupon_choice": "85折"}, message_id="x")
    assert r.message("utter_coupon_claimed")["coupon_name"] == "全场85折"


def test_unclear_choice_shows_the_list_again(shop):
    r = run(ActionClaimCoupon(), slots={"coupon_choice": "钻石券"})
    assert r.responses[:2] == ["utter_coupon_choice_unclear", "utter_claimable_coupons"]


def test_tier_refusal_explains_itself(shop):
    r = run(ActionClaimCoupon(), slots={"coupon_choice": "GOLDONLY"})
    assert r.responses == ["utter_claim_refused_tier_too_low"]
    assert _coupons(shop["member_id"], "GOLDONLY") == 0


def test_exchange_asks_then_spends_points_and_stock_together(shop):
    r = run(ActionExchangeCoupon(), slots={"coupon_choice": "TOTE"})
    ask = r.message("utter_confirm_exchange")
    assert ask["points_cost"] == 100 and ask["balance_after"] == 50
    assert r.slot("pending_exchange") == "TOTE"
    assert _coupons(shop["member_id"], "TOTE") == 0  # nothing before the yes
    done = run(ActionConfirmExchange(), slots={"pending_exchange": "TOTE"}, intent="affirm", message_id="yes1")
    assert done.message("utter_exchange_done")["balance"] == 50
    assert _coupons(shop["member_id"], "TOTE") == 1
    with db.session() as s:
        assert s.get(Member, shop["member_id"]).points_balance == 50
    # The second exchange is refused for points, and nothing moves.
    r2 = run(ActionExchangeCoupon(), slots={"coupon_choice": "TOTE"})
    assert r2.responses == ["utter_claim_refused_insufficient_points"]
    assert r2.message("utter_claim_refused_insufficient_points")["shortfall"] == 50


def test_exchange_cancelled_on_no(shop):
    r = run(ActionConfirmExchange(), slots={"pending_exchange": "TOTE"}, intent="deny")
    assert r.responses == ["utter_exchange_cancelled"]
    assert r.slot("pending_exchange") is None
    assert _coupons(shop["member_id"], "TOTE") == 0


def test_my_coupons_soonest_first(shop):
    run(ActionClaimCoupon(), slots={"coupon_choice": "PCT15"}, message_id="p")
    m = run(ActionMyCoupons()).message("utter_my_coupons")
    lines = m["coupon_lines"].splitlines()
    assert len(lines) == 2 and "85折" in lines[0]  # 14 days before the 30-day welcome coupon
