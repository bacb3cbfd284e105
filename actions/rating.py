"""Scores after a conversation: the agent's (after a handback) and the bot's own (asked at a goodbye).

A score answers the latest rating question the shopper was shown: the bot's
question of this session goes to the core's bot ratings
(loyalty.conversations.service.rate_bot), anything else to the handoff that
just ended (loyalty.handoff.service.rate), as before bot ratings existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import core, identity, unavailable
from actions.parsing import score_in
from loyalty.conversations import service as conversations
from loyalty.errors import InvalidInput, Unavailable
from loyalty.handoff import service as handoffs

ASK_AGENT = "utter_ask_rating"
ASK_BOT = "utter_ask_bot_rating"
# Messages that ask the bot nothing: a conversation of only these is too short to be worth a score.
SMALL_TALK = frozenset({"greet", "goodbye", "thank", "affirm", "deny", "stop", "rate"})
# A person took part (asked for, queued, handed back) or the account was closed: no bot score then.
NOT_THE_BOTS = frozenset({"action_handoff", "action_cancel_handoff", "utter_handback", ASK_AGENT,
                          "utter_account_closed"})


def session_events(tracker: Tracker) -> list[dict[str, Any]]:
    """The events of the current Rasa session (all of them when the tracker has no session start)."""
    events = list(tracker.events)
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("event") == "session_started":
            return events[i + 1:]
    return events


def session_started_at(tracker: Tracker) -> datetime:
    """When the current session began: its ``session_started`` event, else the conversation's first event
    (the epoch when it has no time)."""
    stamps = [e.get("timestamp") for e in tracker.events if e.get("event") == "session_started"]
    stamps = stamps[-1:] or [e.get("timestamp") for e in tracker.events[:1]]
    ts = stamps[0] if stamps and stamps[0] is not None else 0
    return datetime.fromtimestamp(float(ts), timezone.utc)


def _done(events: Iterable[dict[str, Any]]) -> set[str]:
    """The actions run and the responses uttered (by rules or by custom actions) among ``events``."""
    done = set()
    for e in events:
        if e.get("event") == "action":
            done.add(str(e.get("name")))
        elif e.get("event") == "bot":
            done.add(str((e.get("metadata") or {}).get("utter_action")))
    return done


def bot_rating_due(tracker: Tracker) -> bool:
    """Whether a goodbye ends a session the bot handled alone, in which the shopper asked it something
    and was not asked for a score yet."""
    events = session_events(tracker)
    done = _done(events)
    if ASK_BOT in done or NOT_THE_BOTS & done or any(e.get("event") in ("pause", "resume") for e in events):
        return False
    intents = [((e.get("parse_data") or {}).get("intent") or {}).get("name") for e in events
               if e.get("event") == "user"]
    if "handback" in intents:
        return False
    return any(i not in SMALL_TALK for i in intents[:-1])  # the last one is the goodbye


def latest_question(tracker: Tracker) -> str | None:
    """The rating question the shopper saw last: the bot's (this session only) or the agent's."""
    for e in reversed(tracker.events):
        if e.get("event") == "session_started":
            break  # the bot's question of an earlier session is not answered now
        if e.get("event") == "bot" and (e.get("metadata") or {}).get("utter_action") in (ASK_AGENT, ASK_BOT):
            return str(e["metadata"]["utter_action"])
    return None


class ActionAskBotRating(Action):
    """After the goodbye of a conversation the bot handled alone: ask once for a 1-5 score."""

    def name(self) -> str:
        return "action_ask_bot_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if bot_rating_due(tracker):
            dispatcher.utter_message(response=ASK_BOT)
        return []


class ActionRecordRating(Action):
    """The 1-5 score: of the bot's conversation when the bot asked last, else of the handoff that ended."""

    def name(self) -> str:
        return "action_record_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        score: Any = next(tracker.get_latest_entity_values("rating"), None)
        if score is None:  # "5" or "五分": the model knew the intent but found no rating entity
            score = score_in(str(tracker.latest_message.get("text") or ""))
        question = latest_question(tracker)
        try:
            if question == ASK_BOT:
                done = await core(
                    conversations.rate_bot, tracker.sender_id,
                    tracker.get_latest_input_channel() or identity(tracker)[0], score,
                    session_started_at=session_started_at(tracker),
                )
                thanks = "utter_thanks_bot_rating"
            else:
                done = await core(handoffs.rate, tracker.sender_id, score) is not None
                thanks = "utter_thanks_rating"
        except InvalidInput:
            dispatcher.utter_message(response=question or ASK_AGENT)
            return []
        except Unavailable:
            unavailable(dispatcher)
            return []
        dispatcher.utter_message(response=thanks if done else "utter_anything_else")
        return []
