"""Erase a closed account's personal data from the Rasa tracker store.

The core erases the member row when an account is closed; the conversation
that led there still holds the phone number, name and birthday: in the
shopper's messages (text, ``parse_data``, entities), in ``slot`` events and
in bot messages that echoed them (the member card; Rasa also keeps a
response's variables in the bot event's metadata). The core never reads
Rasa's tables, so the bot side scrubs them.

When: the event broker sees every saved event; the save that carries the
bot's ``utter_account_closed`` (uttered only after the core closed the
account) triggers :func:`erase_conversation` for that sender.

What: the values of that sender's ``phone``, ``name`` and ``birthday`` slot
events (and common spellings of the birthday), the shopper's messages that
filled those slots, with their ``phone_number`` and ``date`` entities, and
anything shaped like a mainland mobile number (masked ones too). Every
string of every event of the conversation is rewritten, in all sessions;
slot events whose value held personal data are set to None, so the
conversation goes on as if the slot had never been filled. Names of
intents, actions, slots and entities are left alone, so the tracker still
loads and predicts as before.

Why this is race-free with Rasa's SQL tracker store: ``save`` publishes the
new events to the broker and then inserts them in the same synchronous
stretch, so they are committed before the broker's task runs; the scrub
takes the conversation's lock (no turn of this shopper runs meanwhile) and
updates rows in place, never adding or removing one. Rasa appends, on each
save, only the events beyond the number of rows it finds, so a later turn
neither rewrites nor duplicates a scrubbed row, and the next turn reads the
scrubbed conversation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

log = logging.getLogger(__name__)

# The response action_close_account utters once the core has closed the account.
ERASURE_RESPONSE = "utter_account_closed"
PII_SLOTS = frozenset({"phone", "name", "birthday"})
PII_ENTITIES = frozenset({"phone_number", "date"})
SKIPPED = "__skip__"  # the join form's "no answer" sentinel: not personal data
MASK = "***"

# A mainland mobile number, possibly written "+86 138 0013 8000" or "138-0013-8000",
# and the masked form the member card shows (138****8000).
_PHONE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?!\d)")
_MASKED_PHONE = re.compile(r"(?<!\d)1[3-9]\d\*{4}\d{4}(?!\d)")
# Values shorter than this are masked only where they are the whole string: as
# substrings they would eat unrelated text (a one-character name).
_MIN_SUBSTRING = 2

# Keys whose strings name parts of the assistant, never the shopper's words.
_TOP_LEVEL_NAMES = frozenset({"event", "name", "policy", "input_channel", "message_id", "sender_id"})
_NESTED_NAMES = frozenset({"entity", "extractor", "role", "group", "processors", "utter_action", "intent_response_key"})
_INTENT_KEYS = frozenset({"intent", "intent_ranking"})


def requested(events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether these events include the bot confirming a closed account."""
    return any(
        e.get("event") == "bot" and (e.get("metadata") or {}).get("utter_action") == ERASURE_RESPONSE
        for e in events
    )


def _birthday_spellings(value: str) -> set[str]:
    """An ISO birthday as shoppers and messages may write it (1990-05-01 → 1990年5月1日, 5月1日…)."""
    try:
        d = date.fromisoformat(value)
    except ValueError:
        return set()
    y, m, dd = d.year, d.month, d.day
    return {
        f"{y}年{m}月{dd}日", f"{y}年{m:02d}月{dd:02d}日", f"{m}月{dd}日", f"{m:02d}月{dd:02d}日",
        f"{y}/{m}/{dd}", f"{y}/{m:02d}/{dd:02d}", f"{y}.{m}.{dd}", f"{y}-{m}-{dd}", f"{y}{m:02d}{dd:02d}",
    }


def personal_values(events: Sequence[Mapping[str, Any]]) -> set[str]:
    """The personal data of one conversation: PII slot values and the messages that gave them."""
    values: set[str] = set()
    last_user: Mapping[str, Any] | None = None
    for e in events:
        kind = e.get("event")
        if kind == "user":
            last_user = e
            continue
        if kind != "slot" or e.get("name") not in PII_SLOTS:
            continue
        value = e.get("value")
        if not isinstance(value, str) or not value.strip() or value == SKIPPED:
            continue
        values.add(value.strip())
        if e.get("name") == "birthday":
            values |= _birthday_spellings(value.strip())
        if last_user is not None:
            # The message that filled a personal slot is itself personal data.
            text = last_user.get("text")
            if isinstance(text, str) and text.strip() and not text.startswith("/"):
                values.add(text.strip())
            for entity in (last_user.get("parse_data") or {}).get("entities") or []:
                if entity.get("entity") in PII_ENTITIES and isinstance(entity.get("value"), str):
                    values.add(entity["value"].strip())
    values.discard("")
    return values


class Scrubber:
    """Rewrites strings so that none of the given values (nor a phone number) is left."""

    def __init__(self, values: Iterable[str]) -> None:
        ordered = sorted(set(values), key=len, reverse=True)  # longest first: "王小明" before "小明"
        self._whole = frozenset(ordered)
        self._parts = [v for v in ordered if len(v) >= _MIN_SUBSTRING]

    def text(self, s: str) -> str:
        """``s`` with every personal value and phone number masked."""
        if s.strip() in self._whole:
            return MASK
        for value in self._parts:
            if value in s:
                s = s.replace(value, MASK)
        s = _PHONE.sub(MASK, s)
        return _MASKED_PHONE.sub(MASK, s)

    def _walk(self, obj: Any, parent: str | None, key: str | None, top: bool) -> Any:
        if isinstance(obj, str):
            if top and key in _TOP_LEVEL_NAMES:
                return obj
            if key in _NESTED_NAMES or (key == "name" and parent in _INTENT_KEYS):
                return obj
            return self.text(obj)
        if isinstance(obj, dict):
            return {k: self._walk(v, key, k, top and key is None) for k, v in obj.items()}
        if isinstance(obj, list):
            # Items keep the list's key, so intent_ranking[i].name is still an intent's name.
            return [self._walk(v, parent, key, False) for v in obj]
        return obj

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A scrubbed copy of one event (as Rasa serialises it)."""
        scrubbed: dict[str, Any] = self._walk(event, None, None, True)
        if event.get("event") == "slot" and scrubbed.get("value") != event.get("value"):
            scrubbed["value"] = None  # erased, not replaced: the slot is simply unset again
        return scrubbed


def scrub_events(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Index → scrubbed event, for the events of one conversation that held personal data."""
    scrubber = Scrubber(personal_values(events))
    changed: dict[int, dict[str, Any]] = {}
    for i, event in enumerate(events):
        new = scrubber.event(event)
        if new != event:
            changed[i] = new
    return changed


# ---------------------------------------------------------------- the tracker store


def sql_store(tracker_store: Any) -> Any:
    """Rasa's SQLTrackerStore behind the agent's wrappers (awaitable, fail-safe), or None."""
    from rasa.core.tracker_store import SQLTrackerStore

    store = tracker_store
    for _ in range(5):
        if isinstance(store, SQLTrackerStore):
            return store
        store = getattr(store, "_tracker_store", None)
    return None


def _scrub_rows(store: Any, sender_id: str) -> int | None:
    """Rewrite the sender's stored events in place; the number changed, or None before the close is saved."""
    event_table = store.SQLEvent
    with store.session_scope() as session:
        rows = session.query(event_table).filter(event_table.sender_id == sender_id).order_by(event_table.id).all()
        events = [json.loads(row.data) for row in rows]
        if not requested(events):
            return None
        changed = scrub_events(events)
        for i, event in changed.items():
            rows[i].data = json.dumps(event)
        session.commit()
    forget = getattr(store, "forget_checkpoint", None)
    if forget is not None:  # bot/tracker_store.py keeps slot values beside the events
        forget(sender_id)
    return len(changed)


async def erase_conversation(agent: Any, sender_id: str, *, attempts: int = 20, pause: float = 0.25) -> int:
    """Scrub one conversation's personal data from the tracker store; returns the events rewritten.

    Runs under the conversation's lock, with the database work in a thread.
    Waits (briefly) until the save that closed the account is visible.
    """
    store = sql_store(getattr(agent, "tracker_store", None))
    if store is None:
        log.error("account closed but the tracker store is not SQL: conversation not scrubbed")
        return 0
    for _ in range(attempts):
        async with agent.lock_store.lock(sender_id):
            changed = await asyncio.to_thread(_scrub_rows, store, sender_id)
        if changed is not None:
            log.info("personal data erased from the conversation: %d events rewritten", changed)
            return changed
        await asyncio.sleep(pause)
    log.error("account closed but its confirmation never reached the tracker store: not scrubbed")
    return 0
