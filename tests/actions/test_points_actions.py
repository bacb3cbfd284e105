import json
import re

import pytest
from rasa_sdk import Tracker
from sqlalchemy import update

from actions.common import member_title, render, tier_title
from actions.points import ActionPointsHistory, ActionShowPoints, ActionShowTier
from loyalty import config, db
from loyalty.members.models import Member
from loyalty.points import service as points
from tests.actions.conftest import Result, domain, run


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


# ---------------------------------------------------------------- tier names in sentences

# Configured names with and without 会员 / "member", as LOYALTY_TIERS may give them.
CUSTOM_TIERS = [
    {"code": "normal", "name_zh": "普通", "name_en": "Basic", "threshold": 0, "multiplier": 1.0},
    {"code": "silver", "name_zh": "银卡会员", "name_en": "Silver Member", "threshold": 2000, "multiplier": 1.2},
    {"code": "gold", "name_zh": "金卡", "name_en": "gold member", "threshold": 6000, "multiplier": 1.5,
     "priority_service": True},
]


def _said(result: Result, response: str, language: str) -> str:
    """The text the shopper reads: the response in their language, filled with the action's values."""
    m = result.message(response)
    tracker = Tracker("t", {"language": language}, {}, [], False, None, {}, "action_listen")
    values = {k: v for k, v in m.items() if k not in ("response", "text", "buttons")}
    return render(domain(), tracker, response, **values)


def _tier_answers(tier: str) -> dict[str, str]:
    db.run(lambda s: s.execute(update(Member).values(tier=tier)))
    out = {}
    for language in ("zh", "en"):
        r = run(ActionShowTier(), slots={"language": language})
        response = r.responses[0]
        assert response in ("utter_tier_status", "utter_tier_top")
        out[language] = _said(r, response, language)
    return out


def _reads_right(text: str) -> None:
    assert "{" not in text
    assert "会员会员" not in text and "會員会员" not in text
    assert not re.search(r"member\W+member", text, re.IGNORECASE)


@pytest.mark.parametrize("tier", ["normal", "silver", "gold", "platinum"])
def test_tier_answer_reads_right_with_the_default_tiers(shop, tier):
    said = _tier_answers(tier)
    for text in said.values():
        _reads_right(text)
    name = config.settings().tier(tier)
    assert said["zh"].startswith(f"你是{name.name_zh}👑")  # the default names already end in 会员
    assert said["en"].startswith(f"Your tier: {name.name_en} 👑")


def test_the_reported_sentence_is_fixed(shop):
    assert _tier_answers("normal")["zh"].startswith("你是普通会员👑 权益：积分1倍")
    assert "可升银卡会员" in _tier_answers("normal")["zh"]


def test_tier_answer_reads_right_whatever_the_configured_names(shop):
    config.use(config.from_env({"LOYALTY_TIERS": json.dumps(CUSTOM_TIERS, ensure_ascii=False)}))
    normal, silver, gold = (_tier_answers(t) for t in ("normal", "silver", "gold"))
    for said in (normal, silver, gold):
        for text in said.values():
            _reads_right(text)
    # 会员 is added to a name without it, once, and never to one that has it.
    assert normal["zh"].startswith("你是普通会员👑") and "可升银卡会员。" in normal["zh"]
    assert silver["zh"].startswith("你是银卡会员👑") and "可升金卡会员。" in silver["zh"]
    assert gold["zh"].startswith("你是金卡会员👑 已是最高等级")
    # English names are labels, as configured.
    assert normal["en"].startswith("Your tier: Basic 👑") and "to reach Silver Member." in normal["en"]
    assert silver["en"].startswith("Your tier: Silver Member 👑")
    assert gold["en"].startswith("Your tier: gold member 👑, our top one!")


@pytest.mark.parametrize(("configured", "said"), [
    ("金卡", "金卡会员"), ("金卡会员", "金卡会员"), (" 钻石 ", "钻石会员"),
    ("黑卡會員", "黑卡會員"), ("VIP", "VIP会员"),
])
def test_member_title_adds_hui_yuan_once(configured, said):
    assert member_title(configured) == said


def test_the_priority_handoff_names_the_tier_once(shop):
    # Its wording follows the same rule as the tier answer (actions/handoff.py uses tier_title too).
    config.use(config.from_env({"LOYALTY_TIERS": json.dumps(CUSTOM_TIERS, ensure_ascii=False)}))
    for language, name in (("zh", "金卡会员"), ("en", "gold member")):
        tracker = Tracker("t", {"language": language}, {}, [], False, None, {}, "action_listen")
        text = render(domain(), tracker, "utter_handoff_priority", tier=tier_title(tracker, "gold"),
                      position=1, wait_minutes=3)
        _reads_right(text)
        assert name in text
