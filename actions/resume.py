"""Answering, right after joining, the question that made a shopper join."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import coupons, membership, points
from actions.common import current_member, unavailable
from actions.identity import show_member_code
from loyalty.errors import Unavailable


class ActionResumeAfterJoin(Action):
    def name(self) -> str:
        return "action_resume_after_join"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        asked = tracker.get_slot("requested_after_join")
        done: list[EventType] = [
            SlotSet("requested_after_join", None), SlotSet("coupon_choice", None), SlotSet("pending_exchange", None)
        ]
        if not asked or not tracker.get_slot("is_member"):
            return done
        try:
            member = await current_member(tracker)
            if member is None:
                return done
            dispatcher.utter_message(response="utter_resume_after_join")
            events: list[EventType] = []
            if asked == "member_card":
                membership.show_card(dispatcher, tracker, member)
            elif asked == "ask_points":
                events = await points.show_points(dispatcher, member)
            elif asked == "points_history":
                events = await points.show_history(dispatcher, tracker, domain, member)
            elif asked == "ask_tier":
                events = await points.show_tier(dispatcher, tracker, domain, member)
            elif asked == "list_coupons":
                events = await coupons.show_offers(dispatcher, tracker, domain, member)
            elif asked == "my_coupons":
                events = await coupons.show_mine(dispatcher, tracker, domain, member)
            elif asked == "referral_info":
                events = await membership.show_referral(dispatcher, member)
            elif asked == "member_code":
                events = await show_member_code(dispatcher, member)
            elif asked == "claim_coupon":
                choice = coupons.chosen_coupon(tracker)
                if choice:
                    events = await coupons.claim_or_confirm(dispatcher, tracker, domain, member, choice, confirm=False)
                else:
                    events = await coupons.show_offers(dispatcher, tracker, domain, member)
            elif asked == "exchange_coupon":
                events = await coupons.show_offers(dispatcher, tracker, domain, member, exchange_only=True)
        except Unavailable:
            unavailable(dispatcher)
            return done
        # Nothing is left pending from here: exchanges are only listed, never confirmed.
        return [*events, *done]
