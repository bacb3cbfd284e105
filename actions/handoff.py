"""Handing a conversation to a person: queue it, say where the shopper stands, go back (the score: rating.py).

The queue lives in the core (loyalty.handoff.service); the console (bot/console)
takes it from there. A paused conversation runs no action, so going back to
the bot while waiting is done by the console's event broker, which then
triggers ``cancel_handoff``; the end of a handoff triggers ``handback``.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import core, current_member, identity, lang, tier_title, unavailable
from loyalty.config import settings
from loyalty.errors import Unavailable
from loyalty.handoff import service

# The offer the shopper said yes to tells why they are handed over.
OFFERS = {
    "utter_offer_human_fallback": "fallback",
    "utter_offer_human_signup": "signup_help",
    "utter_offer_human_priority": "priority",
}


def reason(tracker: Tracker) -> str:
    """request | complaint | fallback | signup_help | priority, from what led here."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent == "complain":
        return "complaint"
    if intent == "affirm":
        for e in reversed(tracker.events):
            if e.get("event") == "bot":
                return OFFERS.get(str((e.get("metadata") or {}).get("utter_action")), "request")
    return "request"


class ActionHandoff(Action):
    """Queue the conversation for a person and pause the bot."""

    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        language = lang(tracker)
        try:
            member = await current_member(tracker)
            ticket = await core(
                service.request, sender_id=tracker.sender_id,
                channel=tracker.get_latest_input_channel() or identity(tracker)[0],
                reason=reason(tracker), member_id=member.id if member else None, language=language,
            )
        except Unavailable:
            unavailable(dispatcher)
            return []  # not paused: the bot keeps helping
        if ticket.status == "active":
            dispatcher.utter_message(response="utter_handoff_with_agent")
        elif ticket.out_of_hours:
            dispatcher.utter_message(
                response="utter_handoff_out_of_hours",
                opens_at=service.opening_text(ticket, language), hours=service.service_hours().describe(),
            )
        elif ticket.priority and member is not None:
            dispatcher.utter_message(
                response="utter_handoff_priority", tier=tier_title(tracker, member.tier),
                position=ticket.position, wait_minutes=ticket.wait_minutes,
            )
        elif ticket.position > 1:
            dispatcher.utter_message(
                response="utter_handoff_queued", position=ticket.position, ahead=ticket.position - 1,
                wait_minutes=ticket.wait_minutes,
            )
        else:
            dispatcher.utter_message(response="utter_handoff", wait_minutes=ticket.wait_minutes)
        return [ConversationPaused()]


class ActionCancelHandoff(Action):
    """Back to the bot. Usually the console already cancelled and resumed; this says so."""

    def name(self) -> str:
        return "action_cancel_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        try:
            h = await core(service.open_for, tracker.sender_id, readonly=True)
            if h is not None and h.status == "queued":
                await core(service.cancel, h.id, by="shopper")
        except Unavailable:
            pass  # the words below are still true for the shopper: the bot answers again
        dispatcher.utter_message(response="utter_handoff_cancelled")
        return []


class ActionSessionStart(Action):
    """A new session: carry the slots over, mark priority members, and keep an open handoff paused.

    Rasa's own session start un-pauses a conversation; a shopper waiting
    overnight (out of hours) would otherwise get the bot back.
    """

    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        if (domain.get("session_config") or {}).get("carry_over_slots_to_new_session", True):
            events += [SlotSet(k, v) for k, v in tracker.current_slot_values().items()
                       if k not in ("session_started_metadata", "priority_service")]
        paused = False
        try:
            member = await current_member(tracker)
            priority = member is not None and settings().tier(member.tier).priority_service
            events.append(SlotSet("priority_service", priority))
            paused = await core(service.open_for, tracker.sender_id, readonly=True) is not None
        except Unavailable:
            pass
        if paused:
            events.append(ConversationPaused())
        events.append(ActionExecuted("action_listen"))
        return events
