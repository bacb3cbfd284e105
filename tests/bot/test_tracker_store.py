"""The bounded SQL tracker store: the same conversation state as Rasa's store, from a bounded read.

Each test plays a conversation turn by turn (retrieve, add the turn's events,
save, as Rasa's processor does) on SQLite and on PostgreSQL, then compares
the bounded tracker with the full one Rasa's own ``SQLTrackerStore`` reads
from the same table.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import text

from bot import erasure
from bot.tracker_store import BoundedSQLTrackerStore, bounded, tail_start
from tests.conftest import _admin

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count()


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain"))


@pytest.fixture(params=["sqlite", "postgresql"])
def tracker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tracker.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"tracker_{next(_names)}"
    with _admin(server).connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield f"{server.base_url}/{name}"
    with _admin(server).connect() as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


class Recorder:
    """An event broker that keeps what it is given."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, event: dict[str, Any]) -> None:
        self.published.append(event)


def stores(url: str, domain: Domain, max_turns: int = 3) -> tuple[BoundedSQLTrackerStore, SQLTrackerStore]:
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    ours = BoundedSQLTrackerStore(domain=domain, dialect=dialect, host=url, max_turns=max_turns,
                                  event_broker=Recorder())  # type: ignore[arg-type]
    theirs = SQLTrackerStore(domain=domain, dialect=dialect, host=url)
    return ours, theirs


def turn(i: int) -> list[Event]:
    """One turn's events: the shopper, an action, its reply; slots, a form and a pause now and then."""
    lang = "en" if i % 2 else "zh"
    events: list[Event] = [
        UserUttered(f"message {i}", {"name": "ask_points", "confidence": 0.9}, message_id=f"m{i}"),
        SlotSet("language", lang),
        ActionExecuted("action_show_points"),
        BotUttered(f"reply {i}", {"buttons": [{"title": "好", "payload": "/affirm"}]}),
    ]
    if i == 4:
        events += [ActionExecuted("join_form"), ActiveLoop("join_form")]
    if i == 9:
        events += [ActionExecuted("join_form"), ActiveLoop(None)]
    if i == 12:
        events += [ActionExecuted("action_handoff"), ConversationPaused()]
    if i == 14:
        events += [ConversationResumed()]
    events.append(ActionExecuted("action_listen"))
    return events


def session_start(**carried: Any) -> list[Event]:
    """As Rasa logs a session start: the action first, though stamped after the events it returned."""
    started = SessionStarted()
    slots: list[Event] = [SlotSet(name, value) for name, value in carried.items()]
    return [ActionExecuted("action_session_start"), started, *slots, ActionExecuted("action_listen")]


def play(store: BoundedSQLTrackerStore, sender: str, turns: range, domain: Domain) -> int:
    """Play ``turns`` as Rasa's processor would; the number of events added."""
    added = 0

    async def go() -> None:
        nonlocal added
        for i in turns:
            tracker = await store.retrieve(sender)
            if tracker is None:
                tracker = store.init_tracker(sender)
                for e in session_start():
                    tracker.update(e)
                    added += 1
            for e in turn(i):
                tracker.update(e, domain)
                added += 1
            await store.save(tracker)
    asyncio.run(go())
    return added


def same_state(a: DialogueStateTracker, b: DialogueStateTracker, domain: Domain) -> None:
    assert a.current_slot_values() == b.current_slot_values()
    assert a.active_loop_name == b.active_loop_name
    assert a.is_paused() == b.is_paused()
    assert a.latest_message.text == b.latest_message.text
    assert a.latest_action_name == b.latest_action_name
    # What the policies featurise (max_history 5 in config.yml): the latest states agree.
    assert a.past_states(domain)[-5:] == b.past_states(domain)[-5:]


def test_bounded_tracker_has_the_full_trackers_state_from_a_few_turns(tracker_url: str, domain: Domain) -> None:
    ours, theirs = stores(tracker_url, domain, max_turns=3)
    added = play(ours, "s1", range(20), domain)
    mine = asyncio.run(ours.retrieve("s1"))
    full = asyncio.run(theirs.retrieve("s1"))
    assert mine is not None and full is not None
    assert len(asyncio.run(theirs.retrieve_full_tracker("s1")).events) == added  # each stored once
    same_state(mine, full, domain)
    users = [e for e in mine.events if isinstance(e, UserUttered)]
    assert [u.text for u in users] == ["message 17", "message 18", "message 19"]
    assert len(mine.events) < len(full.events) / 3
    # Rasa's full tracker (the console's transcript) still has every turn.
    everything = asyncio.run(ours.retrieve_full_tracker("s1"))
    assert everything is not None and len(everything.events) == added


@pytest.mark.parametrize("stop", [5, 6, 7, 10, 13, 15])
def test_state_agrees_inside_a_form_and_a_pause(tracker_url: str, domain: Domain, stop: int) -> None:
    ours, theirs = stores(tracker_url, domain, max_turns=3)
    play(ours, "s2", range(stop), domain)
    mine, full = asyncio.run(ours.retrieve("s2")), asyncio.run(theirs.retrieve("s2"))
    assert mine is not None and full is not None
    same_state(mine, full, domain)
    assert mine.is_paused() == (12 <= stop - 1 < 14)
    assert mine.active_loop_name == ("join_form" if 4 <= stop - 1 < 9 else None)


def test_saving_again_or_a_copy_stores_nothing_twice_and_publishes_only_new_events(
    tracker_url: str, domain: Domain
) -> None:
    ours, theirs = stores(tracker_url, domain)
    added = play(ours, "s3", range(6), domain)
    broker = ours.event_broker
    assert isinstance(broker, Recorder)
    assert len(broker.published) == added
    tracker = asyncio.run(ours.retrieve("s3"))
    assert tracker is not None
    asyncio.run(ours.save(tracker))
    asyncio.run(ours.save(tracker.copy()))  # Rasa copies trackers; the copy holds the same events
    copy = tracker.copy()
    copy.update(UserUttered("one more", message_id="extra"))
    asyncio.run(ours.save(copy))
    full = asyncio.run(theirs.retrieve_full_tracker("s3"))
    assert full is not None and len(full.events) == added + 1
    assert [e["event"] for e in broker.published[added:]] == ["user"]


def test_a_new_session_bounds_the_tracker_like_rasas(tracker_url: str, domain: Domain) -> None:
    ours, theirs = stores(tracker_url, domain, max_turns=10)
    play(ours, "s4", range(4), domain)

    async def new_session() -> None:
        tracker = await ours.retrieve("s4")
        assert tracker is not None
        for e in session_start(language="en"):
            tracker.update(e)
        await ours.save(tracker)
    asyncio.run(new_session())
    play(ours, "s4", range(4, 6), domain)
    mine, full = asyncio.run(ours.retrieve("s4")), asyncio.run(theirs.retrieve("s4"))
    assert mine is not None and full is not None
    assert [e.as_dict() for e in mine.events] == [e.as_dict() for e in full.events]


def test_tail_start_counts_shopper_messages_back_to_the_listen_before() -> None:
    events: list[Event] = [ActionExecuted("action_listen")]
    for i in range(5):
        events += [UserUttered(f"u{i}"), ActionExecuted("a"), ActionExecuted("action_listen")]
    start = tail_start(events, 2)
    assert events[start] == ActionExecuted("action_listen")
    assert isinstance(events[start + 1], UserUttered) and events[start + 1].text == "u3"
    assert tail_start(events, 50) == 0


def test_message_ids_and_replay_are_answered_by_bounded_queries(tracker_url: str, domain: Domain) -> None:
    ours, _ = stores(tracker_url, domain)
    play(ours, "s5", range(30), domain)
    assert asyncio.run(ours.has_message("s5", "m0"))  # long before the checkpoint
    assert asyncio.run(ours.has_message("s5", "m29"))
    assert not asyncio.run(ours.has_message("s5", "m30"))
    assert not asyncio.run(ours.has_message("other", "m1"))
    newest = asyncio.run(ours.recent_messages("s5", 0.0, 7))
    assert [e.get("text") for e in newest] == ["reply 26", "message 27", "reply 27", "message 28", "reply 28",
                                               "message 29", "reply 29"]
    bots = asyncio.run(ours.recent_messages("s5", 0.0, 100, keep=lambda e: e["event"] == "bot"))
    assert [e["text"] for e in bots] == [f"reply {i}" for i in range(30)]
    since = bots[-3]["timestamp"]
    assert [e["text"] for e in asyncio.run(ours.recent_messages("s5", since, 100))] == [
        "message 28", "reply 28", "message 29", "reply 29"]


def test_erasure_drops_the_checkpoint_and_the_conversation_goes_on(tracker_url: str, domain: Domain) -> None:
    ours, theirs = stores(tracker_url, domain)
    play(ours, "s6", range(8), domain)

    async def close() -> None:
        tracker = await ours.retrieve("s6")
        assert tracker is not None
        tracker.update(SlotSet("phone", "13800138000"))
        tracker.update(BotUttered("closed", metadata={"utter_action": "utter_account_closed"}))
        await ours.save(tracker)
    asyncio.run(close())
    store = erasure.sql_store(ours)
    assert bounded(store) is ours
    changed = erasure._scrub_rows(store, "s6")
    assert changed is not None and changed > 0
    with ours.engine.connect() as c:
        assert c.execute(text("SELECT state FROM tracker_checkpoints WHERE sender_id = 's6'")).first() is None
    mine = asyncio.run(ours.retrieve("s6"))
    full = asyncio.run(theirs.retrieve("s6"))
    assert mine is not None and full is not None
    assert mine.get_slot("phone") != "13800138000"
    same_state(mine, full, domain)
    play(ours, "s6", range(8, 12), domain)
    with ours.engine.connect() as c:
        state = c.execute(text("SELECT state FROM tracker_checkpoints WHERE sender_id = 's6'")).scalar_one()
    assert "13800138000" not in state


def test_connections_are_kept_and_used_from_worker_threads(tracker_url: str, domain: Domain) -> None:
    import sqlalchemy as sa

    ours, _ = stores(tracker_url, domain)
    assert not isinstance(ours.engine.pool, sa.pool.NullPool)  # SQLite: not a new file handle per query
    if tracker_url.startswith("sqlite"):
        with ours.engine.connect() as c:  # reads do not wait for another conversation's write
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

    async def many() -> int:
        await asyncio.gather(*(ours.save(DialogueStateTracker.from_events(f"kept-{i}", turn(i), domain.slots))
                               for i in range(12)))
        found = await asyncio.gather(*(ours.retrieve(f"kept-{i}") for i in range(12)))
        return sum(t is not None and len(t.events) > 0 for t in found)

    assert asyncio.run(many()) == 12


def test_the_latest_turn_is_read_without_the_tracker(tracker_url: str, domain: Domain) -> None:
    from rasa.shared.core.events import BotUttered

    ours, _ = stores(tracker_url, domain)
    events: list[Event] = [ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"}),
                           BotUttered("menu", {"buttons": [{"title": "积分", "payload": "/ask_points"}]}),
                           ActionExecuted("action_listen"), UserUttered("注销", {"name": "close_account"}),
                           BotUttered("确定吗？", {"buttons": [{"title": "确定注销", "payload": "/affirm"}]}),
                           BotUttered("注销后积分清零", {})]
    asyncio.run(ours.save(DialogueStateTracker.from_events("latest", events, domain.slots)))
    latest = asyncio.run(ours.latest_turn("latest"))
    assert [type(e).__name__ for e in latest] == ["UserUttered", "BotUttered", "BotUttered"]
    assert latest[0].text == "注销" and latest[1].data["buttons"][0]["title"] == "确定注销"
    assert asyncio.run(ours.latest_turn("nobody")) == []


def test_events_kept_in_memory_never_hide_another_replicas_rows(tracker_url: str, domain: Domain) -> None:
    a, _ = stores(tracker_url, domain)
    b, _ = stores(tracker_url, domain)  # a second replica on the same database
    sender = "two-replicas"
    tracker = DialogueStateTracker.from_events(sender, turn(0), domain.slots)
    asyncio.run(a.save(tracker))
    seen_by_b = asyncio.run(b.retrieve(sender))
    assert seen_by_b is not None
    seen_by_b.update_with_events(turn(1), domain)
    asyncio.run(b.save(seen_by_b))
    # A kept turn 0 in memory; turn 1 is only in the database, and A reads it from there.
    again = asyncio.run(a.retrieve(sender))
    assert again is not None and list(again.events) == list(seen_by_b.events)
    assert a._events.get(sender)  # and the rows A read are kept for next time


def test_erasure_drops_the_kept_events_at_once(tracker_url: str, domain: Domain) -> None:
    ours, _ = stores(tracker_url, domain)
    asyncio.run(ours.save(DialogueStateTracker.from_events("erased", turn(0), domain.slots)))
    assert ours._events.get("erased")
    ours.forget_checkpoint("erased")
    assert ours._events.get("erased") == {}


def test_the_kept_events_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot import tracker_store

    cache = tracker_store.EventCache()
    monkeypatch.setattr(tracker_store, "CACHE_CONVERSATIONS", 3)
    monkeypatch.setattr(tracker_store, "CACHE_EVENTS", 5)
    for i in range(5):
        cache.put(f"s{i}", [(row, ActionExecuted("action_listen")) for row in range(1, 9)])
    assert [cache.get(f"s{i}") == {} for i in range(5)] == [True, True, False, False, False]
    assert sorted(cache.get("s4")) == [4, 5, 6, 7, 8]  # the newest rows of a conversation
    monkeypatch.setattr(tracker_store, "CACHE_SECONDS", 0.05)
    time.sleep(0.1)  # everything is now too old
    assert cache.get("s4") == {}
    cache.put("s5", [(1, ActionExecuted("action_listen"))])
    assert len(cache._kept) == 1  # the idle ones went
