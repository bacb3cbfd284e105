"""Recommendations: a few in-stock products with a one-line reason, narrowed by what was asked."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import core, current_member, join_list, pick, render, unavailable
from loyalty.errors import InvalidInput, NotFound, Unavailable
from loyalty.recommender import service as recommender

SHOWN = 4


def _wanted(tracker: Tracker) -> list[str]:
    """The shopper's own words for the category or need ("护肤品", "snacks for my kids")."""
    text = tracker.latest_message.get("text") or ""
    words = []
    for e in tracker.latest_message.get("entities") or []:
        if e.get("entity") in ("product_category", "need"):
            start, end = e.get("start"), e.get("end")
            words.append(text[start:end] if isinstance(start, int) and isinstance(end, int) else str(e.get("value")))
    return list(dict.fromkeys(w for w in words if w))



class ActionRecommend(Action):
    def name(self) -> str:
        return "action_recommend"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        done: list[EventType] = [SlotSet("product_category", None), SlotSet("need", None)]
        wanted = _wanted(tracker)
        request = " ".join(wanted) or (tracker.latest_message.get("text") or "")
        try:
            member = await current_member(tracker)
            lines = []
            if member is not None:
                try:
                    picks = await core(recommender.recommend, member.id, SHOWN, need=request, readonly=True)
                except (InvalidInput, NotFound):
                    picks = []
                for n, p in enumerate(picks, 1):
                    lines.append(render(domain, tracker, "utter_product_line", n=n,
                                        product=pick(tracker, p.name_zh, p.name_en), price=p.price,
                                        reason=pick(tracker, p.reason_zh, p.reason_en)))
            if not lines:
                guest = await core(recommender.for_guest, SHOWN, request or None, readonly=True)
                reason = render(domain, tracker, "utter_reco_reason_popular")
                lines = [
                    render(domain, tracker, "utter_product_line", n=n, product=pick(tracker, p.name_zh, p.name_en),
                           price=p.price, reason=reason)
                    for n, p in enumerate(guest, 1)
                ]
        except Unavailable:
            unavailable(dispatcher)
            return done
        if not lines:
            dispatcher.utter_message(response="utter_no_recommendations")
        elif wanted:
            dispatcher.utter_message(response="utter_recommendations_for", wanted=join_list(tracker, wanted),
                                     product_lines="\n".join(lines))
        else:
            dispatcher.utter_message(response="utter_recommendations", product_lines="\n".join(lines))
        return done
