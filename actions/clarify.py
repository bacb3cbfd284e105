"""One short question instead of a guess: "did you mean A or B?" with two buttons.

When the NLU is not sure (``nlu_fallback``: low confidence, two intents too
close, or a gate of bot/nlu/gate.py on a costly intent), the first miss runs
``action_clarify``. If the two best guesses are both things the bot can do,
it asks which one with a button each (the button sends the intent, so the
answer is certain); otherwise it asks to rephrase as before. A second miss
in a row offers a person (data/rules/fallback.yml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import lang

# What a button offers for an intent: (payload intent, Chinese title, English title).
# A claim without a named coupon lists what can be claimed, so both offer the list.
OFFERS: dict[str, tuple[str, str, str]] = {
    "ask_points": ("ask_points", "查积分余额", "My points balance"),
    "points_history": ("points_history", "积分明细/到账", "Points history"),
    "ask_tier": ("ask_tier", "会员等级权益", "My tier and perks"),
    "list_coupons": ("list_coupons", "现在能领的券", "Coupons I can claim"),
    "claim_coupon": ("list_coupons", "现在能领的券", "Coupons I can claim"),
    "my_coupons": ("my_coupons", "我已有的券", "Coupons I have"),
    "exchange_coupon": ("exchange_coupon", "积分换券", "Swap points for a coupon"),
    "recommend": ("recommend", "推荐好物", "Product picks"),
    "join": ("join", "加入会员", "Join"),
    "member_card": ("member_card", "我的会员卡", "My member card"),
    "member_code": ("member_code", "出示会员码", "Code for the till"),
    "referral_info": ("referral_info", "邀请好友奖励", "Referral rewards"),
    "human": ("human", "转人工客服", "Talk to a person"),
    "complain": ("complain", "投诉/反馈问题", "Make a complaint"),
    "opt_out": ("opt_out", "退订营销消息", "Stop marketing messages"),
    "close_account": ("close_account", "注销会员", "Close my account"),
}
# Offer two guesses only when together they are a real contest, not noise.
MIN_FIRST = 0.25
MIN_SECOND = 0.1


def choices(ranking: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The two payload intents to offer for an intent ranking, or () to ask for a rephrase."""
    ranked = [r for r in ranking if r.get("name") and r.get("name") != "nlu_fallback"]
    if len(ranked) < 2:
        return ()
    first, second = ranked[0], ranked[1]
    if float(first.get("confidence") or 0) < MIN_FIRST or float(second.get("confidence") or 0) < MIN_SECOND:
        return ()
    if first["name"] not in OFFERS or second["name"] not in OFFERS:
        return ()
    a, b = OFFERS[first["name"]][0], OFFERS[second["name"]][0]
    return (a, b) if a != b else ()


def buttons(offered: Sequence[str], language: str) -> list[dict[str, str]]:
    """A button per offered intent, titled in the shopper's language."""
    titles = {payload: (zh, en) for payload, zh, en in OFFERS.values()}
    return [{"title": titles[i][1] if language == "en" else titles[i][0], "payload": f"/{i}"} for i in offered]


class ActionClarify(Action):
    """Ask "A or B?" with two buttons, or to rephrase when there is no clear pair."""

    def name(self) -> str:
        return "action_clarify"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        offered = choices(tracker.latest_message.get("intent_ranking") or [])
        if not offered:
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        dispatcher.utter_message(response="utter_clarify", buttons=buttons(offered, lang(tracker)))
        return []
