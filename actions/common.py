"""What every action needs: the shopper's language and member, core calls, list fragments."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.parsing import phone_in
from loyalty import db
from loyalty.config import settings
from loyalty.errors import InvalidInput, LoyaltyError, Unavailable
from loyalty.members import service as members
from loyalty.membership import service as membership
from loyalty.membership.service import MemberCard

log = logging.getLogger(__name__)
T = TypeVar("T")

# Rasa input channel names → the core's channel names for member identities.
CHANNELS = {"wechat": "wechat", "webchat": "webchat"}


def lang(tracker: Tracker) -> str:
    """"en" or "zh" (the default), from the ``language`` slot."""
    return "en" if tracker.get_slot("language") == "en" else "zh"


def pick(tracker: Tracker, zh: str, en: str) -> str:
    """The Chinese or the English name of a thing, for the shopper's language."""
    return en if lang(tracker) == "en" else zh


def identity(tracker: Tracker) -> tuple[str, str]:
    """(channel, address) of the shopper: the core keys member identities by these."""
    channel = CHANNELS.get(tracker.get_latest_input_channel() or "", "")
    if not channel:
        channel = "webchat" if tracker.sender_id.startswith("web-") else "rest"
    return channel, tracker.sender_id


def render(domain: DomainDict, tracker: Tracker, response: str, /, **variables: Any) -> str:
    """One response of the domain as text in the shopper's language (for list lines)."""
    variations = domain.get("responses", {}).get(response) or []
    want_en = lang(tracker) == "en"
    chosen = None
    for v in variations:
        conditions = v.get("condition") or []
        is_en = any(c.get("name") == "language" and c.get("value") == "en" for c in conditions)
        if is_en == want_en:
            chosen = v
            break
    if chosen is None and variations:
        chosen = variations[0]
    text = (chosen or {}).get("text", response)
    try:
        return str(text).format(**variables)
    except (KeyError, IndexError, ValueError):
        log.warning("response %s is missing a variable", response)
        return str(text)


def join_list(tracker: Tracker, items: list[str]) -> str:
    return (", " if lang(tracker) == "en" else "、").join(items)


async def core(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call one core operation off the event loop, in its own transaction."""
    return await db.arun(fn, *args, **kwargs)


async def current_member(tracker: Tracker) -> MemberCard | None:
    """The active member behind this conversation, or None.

    A member who has come to chat in another language is remembered in it (outreach writes in it)."""
    channel, address = identity(tracker)
    card = await db.arun(membership.by_identity, channel, address, readonly=True)
    said = spoken_language(tracker)
    if card is not None and said is not None and said != card.language:
        try:
            await db.arun(members.set_language, card.id, said)
        except LoyaltyError as exc:  # never worth failing the shopper's request over
            log.warning("member language not updated: %s", exc.code)
    return card


def spoken_language(tracker: Tracker, settle: int = 2) -> str | None:
    """The language of the shopper's last ``settle`` messages that told one, when they agree.

    Messages that tell nothing ("ok", a code, an emoji) are skipped; one English word in a
    Chinese conversation is not enough to switch a member's language."""
    told: list[str] = []
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        entities = (event.get("parse_data") or {}).get("entities") or []
        value = next((e.get("value") for e in entities if e.get("entity") == "language"), None)
        if value in members.LANGUAGES:
            told.append(str(value))
            if len(told) == settle:
                break
    return told[0] if len(told) == settle and len(set(told)) == 1 else None


def message_key(tracker: Tracker) -> str:
    """An idempotency key for what the latest user message decided (a retry replays it)."""
    mid = tracker.latest_message.get("message_id") or str(len(tracker.events))
    return f"{tracker.sender_id}:{mid}"


def unavailable(dispatcher: CollectingDispatcher) -> None:
    dispatcher.utter_message(response="utter_service_unavailable")


def tier_name(tracker: Tracker, code: str) -> str:
    """A tier's name as configured, in the shopper's language (a label: "等级：金卡会员")."""
    t = settings().tier(code)
    return pick(tracker, t.name_zh, t.name_en)


# A Chinese tier name that already says "member" (会员, or 會員 as typed in 繁體).
_MEMBER_SUFFIXES = ("会员", "會員")


def member_title(name: str) -> str:
    """A Chinese tier name as said of a person: 金卡 → 金卡会员; 金卡会员 stays as it is."""
    name = name.strip()
    return name if name.endswith(_MEMBER_SUFFIXES) else name + "会员"


def tier_title(tracker: Tracker, code: str) -> str:
    """A tier's name for sentences about the shopper ("你是{tier}", "Your tier: {tier}").

    Tiers are configurable (LOYALTY_TIERS), with or without 会员 in their
    names, so the responses never add 会员 or "member" themselves: Chinese
    gets 会员 here, once; English sentences use the name as a label, as is.
    """
    t = settings().tier(code)
    return pick(tracker, member_title(t.name_zh), t.name_en.strip())


__all__ = [
    "LoyaltyError",
    "MemberAction",
    "Unavailable",
    "core",
    "current_member",
    "identity",
    "join_list",
    "lang",
    "message_key",
    "member_title",
    "pick",
    "render",
    "tier_name",
    "tier_title",
    "unavailable",
]


class MemberAction(Action, ABC):  # type: ignore[misc]
    """An action for members: finds the member, turns a database outage into an apology."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            member = await current_member(tracker)
            if member is None:
                dispatcher.utter_message(response="utter_offer_join")
                return [SlotSet("is_member", False), *self.neutral(tracker)]
            return await self.act(dispatcher, tracker, domain, member)
        except Unavailable:
            unavailable(dispatcher)
            return self.neutral(tracker)

    @abstractmethod
    async def act(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict, member: MemberCard
    ) -> list[EventType]:
        """Do the action's job for ``member``."""

    def neutral(self, tracker: Tracker) -> list[EventType]:
        """Events that leave the conversation clean when the action could not do its job."""
        return []


MAX_PHONE_TRIES = 3  # wrong phone numbers before a form gives up (join, link)


def phone_or_retry(dispatcher: CollectingDispatcher, tracker: Tracker, value: Any,
                   slot: str) -> tuple[str | None, dict[str, Any]]:
    """The phone number the shopper typed, normalised; or None and ``slot``'s values after a wrong one,
    having said how many tries are left (or that it gives up after the third)."""
    entity = next(tracker.get_latest_entity_values("phone_number"), None)
    try:
        return members.normalize_phone(phone_in(str(entity or value or ""))), {}
    except InvalidInput:
        tries = int(tracker.get_slot("phone_tries") or 0) + 1
        if tries < MAX_PHONE_TRIES:
            dispatcher.utter_message(response="utter_invalid_phone", tries_left=MAX_PHONE_TRIES - tries)
        else:
            dispatcher.utter_message(response="utter_phone_failed")
        return None, {slot: None, "phone_tries": min(tries, MAX_PHONE_TRIES)}
