from actions.points import ActionPointsHistory, ActionShowPoints, ActionShowTier
from loyalty import db
from loyalty.points import service as points
from tests.actions.conftest import run


def test_points_balance_and_expiry(shop):
    r = run(ActionShowPoints())
    m = r.message("utter_points_summary")
    assert m["balance"] == 150 and m["expiry_points"] == 150
    assert len(m["expiry_date"]) == 10


def test_non_member_is_offered_to_join(shop):
    r = run(ActionShowPoints(), sender="web-stranger")
    assert r.responses == ["utter_offer_join"]
    assert r.slot("is_member") is False


def test_history_lists_entries_in_language(shop):
    db.run(points.adjust, shop["member_id"], -30, reason="test", actor="tester")
    zh = run(ActionPointsHistory())
    entries = zh.message("utter_points_history")["entries"].splitlines()
    assert entries[0].endswith("-30") or "-30" in entries[0]
    assert "+150" in entries[1]
    en = run(ActionPointsHistory(), slots={"language": "en"})
    assert en.message("utter_points_history")["entries"] != zh.message("utter_points_history")["entries"]


def test_tier_status_says_how_far(shop):
    r = run(ActionShowTier())
    m = r.message("utter_tier_status")
    assert m["to_next"] == 2000 - 150
    assert m["tier"] == "普通会员" and m["next_tier"] == "银卡会员"
    en = run(ActionShowTier(), slots={"language": "en"}).message("utter_tier_status")
    assert en["tier"] == "Member" and en["next_tier"] == "Silver"
