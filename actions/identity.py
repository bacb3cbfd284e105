"""Linking a membership by SMS code, unlinking, and the member code shown at the till.

The code a shopper types never comes here: the channel checks it against the
core before the message reaches Rasa and sends ``/link_code`` instead
(bot/linking.py). ``action_link_code_entered`` reads the outcome from the core,
so a forged ``/link_code`` only ever shows the shopper the truth.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    MAX_PHONE_TRIES,
    MemberAction,
    core,
    current_member,
    identity,
    lang,
    phone_or_retry,
    tier_title,
    unavailable,
)
from loyalty.config import settings
from loyalty.coupons import service as coupons
from loyalty.errors import LoyaltyError, NotFound, Refused, Unavailable
from loyalty.identity import member_codes
from loyalty.identity import service as links
from loyalty.identity.render import data_url, member_code_png
from loyalty.members import service as members
from loyalty.membership.service import MemberCard

log = logging.getLogger(__name__)
# What a typed code came to, as the shopper hears it (outcomes of loyalty.identity.service.Attempt).
OUTCOME_RESPONSES = {
    "wrong": "utter_code_wrong",
    "locked": "utter_code_locked",
    "expired": "utter_code_expired",
    "used": "utter_code_used",
    "none": "utter_no_link_pending",
    "taken": "utter_link_failed",
    "closed": "utter_link_failed",
    "phone_taken": "utter_link_failed",
    "unavailable": "utter_service_unavailable",
}


def _done() -> list[EventType]:
    return [SlotSet("link_phone", None), SlotSet("phone_tries", 0)]


def say_refusal(dispatcher: CollectingDispatcher, exc: LoyaltyError, phone: str | None = None) -> None:
    """A code that could not be sent, in the shopper's words."""
    if exc.code == "not_a_member":
        dispatcher.utter_message(response="utter_link_not_member", phone=members.mask_phone(phone))
    elif exc.code in ("already_linked", "identity_taken"):
        dispatcher.utter_message(response="utter_already_linked")
    elif exc.code == "code_cooldown":
        dispatcher.utter_message(response="utter_link_cooldown", seconds=exc.params.get("retry_after", 60))
    elif exc.code == "code_daily_limit":
        dispatcher.utter_message(response="utter_link_daily_limit")
    elif exc.code == "no_link_pending":
        dispatcher.utter_message(response="utter_no_link_pending")
    elif isinstance(exc, Unavailable):
        unavailable(dispatcher)
    else:  # the SMS provider said no, or something unforeseen
        log.info("link code not sent: %s", exc.code)
        dispatcher.utter_message(response="utter_link_sms_failed")


class ValidateLinkForm(FormValidationAction):
    """The number the membership is under: three tries, as in the join form."""

    def name(self) -> str:
        return "validate_link_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        if tracker.get_slot("link_phone") is None and (tracker.get_slot("phone_tries") or 0) >= MAX_PHONE_TRIES:
            return []
        return domain_slots

    def validate_link_phone(self, value: Any, dispatcher, tracker, domain) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        number, retry = phone_or_retry(dispatcher, tracker, value, "link_phone")
        return {"link_phone": number} if number else retry


class ActionSendLinkCode(Action):
    """Texts a code to the member with the number in ``link_phone``."""

    def name(self) -> str:
        return "action_send_link_code"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        phone = tracker.get_slot("link_phone")
        if not phone:
            return _done()
        channel, address = identity(tracker)
        try:
            # Two short transactions around an HTTP call to the SMS provider: off the event loop.
            sent = await asyncio.to_thread(links.request_link_code, channel, address, str(phone))
        except LoyaltyError as exc:
            say_refusal(dispatcher, exc, str(phone))
            return _done()
        dispatcher.utter_message(response="utter_link_code_sent", phone=sent.phone_masked,
                                 minutes=max(sent.expires_in // 60, 1))
        return _done()


class ActionResendLinkCode(Action):
    def name(self) -> str:
        return "action_resend_link_code"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        channel, address = identity(tracker)
        try:
            sent = await asyncio.to_thread(links.resend_link_code, channel, address)
        except LoyaltyError as exc:
            say_refusal(dispatcher, exc)
            return []
        dispatcher.utter_message(response="utter_link_code_sent", phone=sent.phone_masked,
                                 minutes=max(sent.expires_in // 60, 1))
        return []


class ActionLinkCodeEntered(Action):
    """Says how the code the channel checked went; once linked, the member's own points, tier and coupons."""

    def name(self) -> str:
        return "action_link_code_entered"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        channel, address = identity(tracker)
        if next(tracker.get_latest_entity_values("link_outcome"), None) == "unavailable":
            unavailable(dispatcher)  # the channel could not check the code: nothing happened
            return []
        try:
            state = await core(links.link_state, channel, address, readonly=True)
            if state.outcome == "pending":  # nothing typed yet ("我输入验证码了"): where the code went
                dispatcher.utter_message(response="utter_link_code_sent", phone=state.phone_masked,
                                         minutes=max(settings().otp_ttl_seconds // 60, 1))
                return []
            if state.outcome != "linked":
                dispatcher.utter_message(response=OUTCOME_RESPONSES.get(state.outcome, "utter_link_failed"),
                                         tries_left=state.tries_left)
                return []
            member = await current_member(tracker)
            if member is None:  # unlinked again meanwhile
                dispatcher.utter_message(response="utter_no_link_pending")
                return [SlotSet("is_member", False)]
            # The member chats in this language now: outreach writes to them in it.
            await core(members.set_language, member.id, lang(tracker))
            held = await core(coupons.member_coupons, member.id, readonly=True)
        except Unavailable:
            unavailable(dispatcher)
            return []
        name = member.name or ""
        if name:
            name = (", " if lang(tracker) == "en" else "，") + name
        dispatcher.utter_message(response="utter_linked", name=name, tier=tier_title(tracker, member.tier),
                                 points=member.points, coupons=len(held))
        return [SlotSet("is_member", True)]


class ActionUnlinkMember(MemberAction):
    def name(self) -> str:
        return "action_unlink_member"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        channel, address = identity(tracker)
        try:
            await core(links.unlink, channel, address)
        except NotFound:
            dispatcher.utter_message(response="utter_not_linked")
            return [SlotSet("is_member", False)]
        dispatcher.utter_message(response="utter_unlinked")
        return [SlotSet("is_member", False)]


class ActionMemberCode(MemberAction):
    """A fresh member code with its QR image (the web chat shows it inline, WeChat gets an image message)."""

    def name(self) -> str:
        return "action_member_code"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_member_code(dispatcher, member)


async def show_member_code(dispatcher: CollectingDispatcher, member: MemberCard) -> list[EventType]:
    try:
        shown = await core(member_codes.issue, member.id)
    except Refused:
        unavailable(dispatcher)
        return []
    png = await asyncio.to_thread(member_code_png, shown.code)
    dispatcher.utter_message(response="utter_member_code", code=shown.spaced, seconds=shown.seconds,
                             image=data_url(png))
    return []
