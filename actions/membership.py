"""Joining, the member card, store welcomes, opting out, closing and referrals."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    MAX_PHONE_TRIES,
    MemberAction,
    core,
    current_member,
    identity,
    lang,
    message_key,
    phone_or_retry,
    pick,
    tier_name,
    unavailable,
)
from actions.parsing import clean_name, parse_birthday
from loyalty.catalogue import service as catalogue
from loyalty.common import local_date
from loyalty.coupons import service as coupons
from loyalty.db import utcnow
from loyalty.errors import InvalidInput, LoyaltyError, NotFound, Refused, Unavailable
from loyalty.members import service as members
from loyalty.membership import service as membership
from loyalty.membership.service import MemberCard
from loyalty.referrals import service as referrals
from loyalty.segments import job as segments_job
from loyalty.visits import service as visits

log = logging.getLogger(__name__)
SKIP = "__skip__"
# Intents a non-member may ask; they are answered right after joining.
RESUMABLE = {
    "member_card", "ask_points", "points_history", "ask_tier", "list_coupons",
    "claim_coupon", "my_coupons", "exchange_coupon", "referral_info", "member_code",
}
FORM_SLOTS = ("consent", "phone", "name", "birthday", "referral_code")


def show_card(dispatcher: CollectingDispatcher, tracker: Tracker, card: MemberCard) -> None:
    dispatcher.utter_message(
        response="utter_member_card", name=card.name or "—", phone=card.phone_masked,
        tier=tier_name(tracker, card.tier), points=card.points, referral_code=card.referral_code,
    )


class ActionCheckMember(Action):
    """Says nothing: sets ``is_member`` (and what to answer after joining) for the rules."""

    def name(self) -> str:
        return "action_check_member"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        try:
            member = await current_member(tracker)
        except Unavailable:
            unavailable(dispatcher)
            return [SlotSet("is_member", None), FollowupAction("action_listen")]
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        resume = intent if member is None and intent in RESUMABLE else None
        return [SlotSet("is_member", member is not None), SlotSet("requested_after_join", resume)]


class ActionMemberCard(MemberAction):
    def name(self) -> str:
        return "action_member_card"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        show_card(dispatcher, tracker, member)
        segment = await core(segments_job.member_segment, member.id, readonly=True)
        if segment is not None:
            dispatcher.utter_message(
                response="utter_member_segment",
                segment=pick(tracker, segment.segment_zh, segment.segment_en),
                lifecycle=pick(tracker, segment.lifecycle_zh, segment.lifecycle_en),
            )
        return []


class ActionStoreWelcome(Action):
    """The welcome after a store QR scan or a follow: the store's name and an offer to join."""

    def name(self) -> str:
        return "action_store_welcome"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        scanned = next(tracker.get_latest_entity_values("store_code"), None)
        code = scanned or tracker.get_slot("store_code")
        try:
            member = await current_member(tracker)
            store = None
            if code:
                try:
                    store = await core(catalogue.store, str(code), readonly=True)
                except NotFound:
                    store = None
        except Unavailable:
            unavailable(dispatcher)
            return [FollowupAction("action_listen")]
        if store is not None:
            if scanned:  # this message came through the store's code or link (not a store remembered before)
                await self._record(tracker, store.code)
            name = pick(tracker, store.name_zh, store.name_en)
            if member:
                dispatcher.utter_message(response="utter_store_welcome_member", store_name=name, points=member.points)
            else:
                dispatcher.utter_message(response="utter_store_welcome_join", store_name=name)
        elif member:
            dispatcher.utter_message(response="utter_welcome_member", points=member.points)
        else:
            dispatcher.utter_message(response="utter_welcome_join")
        return [
            SlotSet("is_member", member is not None),
            SlotSet("store_code", store.code if store else None),
            SlotSet("requested_after_join", None),
        ]

    @staticmethod
    async def _record(tracker: Tracker, code: str) -> None:
        """Count the visit for the store's QR funnel, once per message; an outage costs the count, not the welcome."""
        channel, address = identity(tracker)
        first = next(tracker.get_latest_entity_values("first_follow"), None)
        try:
            await core(visits.record_visit, code, channel, address, first_follow=first in (True, "true", "True"),
                       key=message_key(tracker))
        except LoyaltyError:
            log.warning("store visit not recorded (store %s, channel %s)", code, channel)


class ValidateJoinForm(FormValidationAction):
    """Consent first, then a phone number the core accepts (three tries), optional name and birthday."""

    def name(self) -> str:
        return "validate_join_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        if tracker.get_slot("consent") is False:
            return []
        if tracker.get_slot("phone") is None and (tracker.get_slot("phone_tries") or 0) >= MAX_PHONE_TRIES:
            return []
        return domain_slots

    def validate_consent(self, value: Any, dispatcher, tracker, domain) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        return {"consent": bool(value)}

    async def validate_phone(self, value: Any, dispatcher, tracker, domain) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "skip":
            dispatcher.utter_message(response="utter_phone_required")
            return {"phone": None}
        number, retry = phone_or_retry(dispatcher, tracker, value, "phone")
        if number is None:
            return retry
        if await self._is_a_member(number):
            # Someone's membership already: no point asking name and birthday, the form ends
            # and the signup turns into a link by SMS code (action_join_member, phone_taken).
            return {"phone": number, "name": SKIP, "birthday": SKIP}
        return {"phone": number}

    @staticmethod
    async def _is_a_member(number: str) -> bool:
        try:
            return await core(membership.by_phone, number, readonly=True) is not None
        except Unavailable:
            return False  # the signup itself will tell

    def validate_name(self, value: Any, dispatcher, tracker, domain) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        if value == SKIP:
            return {"name": SKIP}
        name = clean_name(str(value or ""))
        if name is None:
            dispatcher.utter_message(response="utter_invalid_name")
        return {"name": name}

    def validate_birthday(self, value: Any, dispatcher, tracker, domain) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        if value == SKIP:
            return {"birthday": SKIP}
        entity = next(tracker.get_latest_entity_values("date"), None)
        day = parse_birthday(str(entity or ""), local_date(utcnow())) if entity else None
        day = day or parse_birthday(str(value or ""), local_date(utcnow()))
        if day is None:
            dispatcher.utter_message(response="utter_invalid_birthday")
            return {"birthday": None}
        return {"birthday": day.isoformat()}


def _clear_form(join_status: str, is_member: bool) -> list[EventType]:
    return [
        SlotSet("join_status", join_status),
        SlotSet("is_member", is_member),
        *(SlotSet(slot, None) for slot in FORM_SLOTS),
        SlotSet("phone_tries", 0),
    ]


class ActionJoinMember(Action):
    """Submits the join form to the core and says how it went."""

    def name(self) -> str:
        return "action_join_member"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if tracker.get_slot("consent") is not True:
            dispatcher.utter_message(response="utter_join_no_consent")
            return _clear_form("declined", False)
        phone = tracker.get_slot("phone")
        if phone is None:
            return _clear_form("phone_failed", False)
        name = tracker.get_slot("name")
        birthday = tracker.get_slot("birthday")
        channel, address = identity(tracker)
        args: dict[str, Any] = {
            "phone": phone, "consent": True,
            "name": None if name in (None, SKIP) else name,
            "birthday": None if birthday in (None, SKIP) else date.fromisoformat(birthday),
            "store_code": tracker.get_slot("store_code"),
            "referral_code": tracker.get_slot("referral_code"),
            "channel": channel, "external_id": address, "language": lang(tracker),
        }
        try:
            result = await self._signup(dispatcher, args)
        except Refused as e:
            if e.code != "already_member":
                dispatcher.utter_message(response="utter_join_failed")
                return _clear_form("failed", False)
            mine = await current_member(tracker)
            if mine is not None:
                dispatcher.utter_message(response="utter_already_member")
                return _clear_form("joined", True)
            # The number is someone's membership: prove it is theirs by SMS code (rules: action_send_link_code).
            dispatcher.utter_message(response="utter_phone_taken")
            return [*_clear_form("phone_taken", False), SlotSet("link_phone", phone)]
        except Unavailable:
            unavailable(dispatcher)
            return _clear_form("failed", False)
        except LoyaltyError as e:
            log.info("signup refused: %s", e.code)
            dispatcher.utter_message(response="utter_join_failed")
            return _clear_form("failed", False)
        dispatcher.utter_message(response="utter_joined", referral_code=result.card.referral_code)
        if result.welcome_coupon:
            held = await core(coupons.member_coupons, result.card.id, readonly=True)
            coupon = next((c for c in held if c.code == result.welcome_coupon), None)
            if coupon is not None:
                dispatcher.utter_message(
                    response="utter_welcome_gift",
                    coupon_name=pick(tracker, coupon.campaign.name_zh, coupon.campaign.name_en),
                )
        if result.referral_rewarded:
            dispatcher.utter_message(response="utter_referral_rewarded")
        return _clear_form("joined", True)

    async def _signup(self, dispatcher: CollectingDispatcher, args: dict[str, Any]) -> membership.Signup:
        """Sign up; an unknown referral code or store is dropped rather than losing the signup."""
        try:
            return await core(membership.signup, **args)
        except InvalidInput as e:
            if e.code == "unknown_referral_code":
                dispatcher.utter_message(response="utter_referral_code_unknown", code=args["referral_code"])
                return await self._signup(dispatcher, {**args, "referral_code": None})
            if e.code == "unknown_store":
                return await self._signup(dispatcher, {**args, "store_code": None})
            raise


class ActionResetJoinForm(Action):
    """Forgets what the join form (or the link form) was told."""

    def name(self) -> str:
        return "action_reset_join_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return [
            *(SlotSet(s, None)
              for s in ("consent", "phone", "name", "birthday", "requested_after_join", "join_status",
                        "link_phone")),
            SlotSet("phone_tries", 0),
        ]


class ActionOptOut(MemberAction):
    def name(self) -> str:
        return "action_opt_out"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        await core(members.set_marketing, member.id, False, actor="bot")
        dispatcher.utter_message(response="utter_opted_out")
        return []


class ActionCloseAccount(MemberAction):
    def name(self) -> str:
        return "action_close_account"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        await core(membership.close_account, member.id, actor="bot")
        dispatcher.utter_message(response="utter_account_closed")
        return [
            SlotSet("is_member", False), SlotSet("requested_after_join", None),
            SlotSet("pending_exchange", None), SlotSet("offered_campaigns", []),
        ]


async def show_referral(dispatcher: CollectingDispatcher, member: MemberCard) -> list[EventType]:
    info = await core(referrals.info, member.id, readonly=True)
    if info.trigger == "first_order":
        dispatcher.utter_message(
            response="utter_referral_info_first_order", code=info.code, referrer_points=info.referrer_points,
            referee_points=info.referee_points, friends_joined=info.friends_joined,
            friends_rewarded=info.friends_rewarded,
        )
    else:
        dispatcher.utter_message(
            response="utter_referral_info_join", code=info.code, referrer_points=info.referrer_points,
            referee_points=info.referee_points, friends_joined=info.friends_joined,
        )
    return []


class ActionReferralInfo(MemberAction):
    def name(self) -> str:
        return "action_referral_info"

    async def act(self, dispatcher, tracker, domain, member):  # type: ignore[no-untyped-def]
        return await show_referral(dispatcher, member)
