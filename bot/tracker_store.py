"""A SQL tracker store whose per-turn cost does not grow with the conversation.

Rasa's ``SQLTrackerStore`` loads and replays every event since the session
started on each ``retrieve`` and ``save`` (``save`` retrieves the whole
tracker once more to publish the new events, then counts the stored ones), and
every policy featurises the whole tracker it is given. A shopper chatting for
four hours makes each turn several times slower than the first.

This store keeps every event in Rasa's ``events`` table (the console's
transcript, the web chat replay and ``rasa export`` see them all) and hands
Rasa a *bounded* tracker: the state of the conversation at a checkpoint
(slots, active loop, pause) as a few events, then the stored events from the
checkpoint on. The checkpoint is written on each save, ``max_turns`` shopper
messages back (never before the latest session start, as Rasa's own retrieve),
so the policies still see every turn their ``max_history`` reaches.

- ``save`` inserts only the events added since the tracker was retrieved
  (loaded events are marked, copies keep the marks), publishes exactly those
  to the event broker, and moves the checkpoint: no re-read, no count.
- Database work runs in a thread, off the event loop.
- ``has_message`` and ``recent_messages`` answer the web chat channel's
  duplicate check and reconnect replay with indexed, bounded queries.

Configure in endpoints.yml::

    tracker_store:
      type: bot.tracker_store.BoundedSQLTrackerStore
      dialect: sqlite
      db: var/tracker.db
      max_turns: 8
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    ConversationPaused,
    Event,
    LoopInterrupted,
    SessionStarted,
    SlotSet,
    UserUttered,
    deserialise_events,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

log = logging.getLogger(__name__)

# Events kept in memory (EventCache): conversations, events per conversation, seconds idle.
CACHE_CONVERSATIONS = 256
CACHE_EVENTS = 120
CACHE_SECONDS = 600.0
# Rows read back for the latest turn's messages (a turn's replies are a handful).
LATEST_TURN_ROWS = 20
DEFAULT_MAX_TURNS = 8  # shopper messages kept before the latest: policies here look 5 actions back
_ROW = "_stored_row"  # attribute set on events that are in the database (or stand for its state)
_SYNTHETIC = -1  # the row id of the events that restore the checkpoint's state

EMPTY: dict[str, Any] = {"slots": {}, "loop": None, "paused": False}

_meta = sa.MetaData()
checkpoints = sa.Table(
    "tracker_checkpoints", _meta,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    # The first stored event a bounded tracker starts from.
    sa.Column("event_id", sa.Integer, nullable=False),
    # Slots, active loop and pause as they were just before that event (JSON).
    sa.Column("state", sa.Text, nullable=False),
)
message_ids = sa.Table(
    "tracker_message_ids", _meta,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column("event_id", sa.Integer, nullable=False),
)


def _mark(event: Event, row_id: int) -> Event:
    setattr(event, _ROW, row_id)
    return event


def _row_of(event: Event) -> int | None:
    return getattr(event, _ROW, None)


def state_of(tracker: DialogueStateTracker) -> dict[str, Any]:
    """What a tracker's events leave behind that later events build on (JSON-safe)."""
    loop = tracker.active_loop
    return {
        "slots": {name: slot.value for name, slot in tracker.slots.items() if slot.has_been_set},
        "loop": None if loop is None or not loop.name else {
            "name": loop.name, "interrupted": bool(loop.is_interrupted), "rejected": bool(loop.rejected),
        },
        "paused": tracker.is_paused(),
    }


def state_events(state: dict[str, Any], timestamp: float) -> list[Event]:
    """Events that put a new tracker in ``state`` (see :func:`state_of`)."""
    events: list[Event] = [SlotSet(name, value, timestamp=timestamp) for name, value in state["slots"].items()]
    loop = state.get("loop")
    if loop:
        events.append(ActiveLoop(loop["name"], timestamp=timestamp))
        if loop.get("interrupted"):
            events.append(LoopInterrupted(True, timestamp=timestamp))
        if loop.get("rejected"):
            events.append(ActionExecutionRejected(loop["name"], timestamp=timestamp))
    if state.get("paused"):
        events.append(ConversationPaused(timestamp=timestamp))
    return [_mark(e, _SYNTHETIC) for e in events]


def tail_start(events: list[Event], max_turns: int) -> int:
    """Index of the first event a bounded tracker needs: ``max_turns`` shopper messages back.

    It starts at the ``action_listen`` before that message, and never before
    the latest session start (Rasa's retrieve starts there too).
    """
    start, users = 0, 0
    for i in range(len(events) - 1, -1, -1):
        e = events[i]
        if isinstance(e, SessionStarted):
            before = i - 1
            # Rasa logs action_session_start after running it, so it comes first in the table.
            if before >= 0 and isinstance(events[before], ActionExecuted) and \
                    events[before].action_name == ACTION_SESSION_START_NAME:
                return before
            return i
        if isinstance(e, UserUttered):
            users += 1
            if users >= max_turns:
                start = i
                if i > 0 and isinstance(events[i - 1], ActionExecuted) and \
                        events[i - 1].action_name == ACTION_LISTEN_NAME:
                    start = i - 1
                return start
    return 0


def _row_fields(sender_id: str, event: Event) -> dict[str, Any]:
    data = event.as_dict()
    return {
        "sender_id": sender_id,
        "type_name": event.type_name,
        "timestamp": data.get("timestamp"),
        "intent_name": (data.get("parse_data") or {}).get("intent", {}).get(INTENT_NAME_KEY),
        "action_name": data.get("name"),
        "data": json.dumps(data),
    }


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # as the loyalty database (loyalty/db.py)
    cur.close()


class EventCache:
    """The events of recent conversations by row id, as read or written by this process.

    A stored row never changes, so an event read or written once need not be decoded again
    (JSON, then Rasa's event classes: most of a read's cost). Only rows the database returns for
    the conversation are taken from here, so a row written by another replica is read, and an
    erased one is never served. Replaying an event into a new tracker changes nothing in it that
    a replay would not set again (``EntitiesAdded`` adds an entity once, a featurization flag is
    set to the same value), so trackers may share them, as Rasa's own copies of a tracker do.

    Bounded: :data:`CACHE_CONVERSATIONS` conversations (least recently used go first), the newest
    :data:`CACHE_EVENTS` events of each, and none older than :data:`CACHE_SECONDS` since the
    conversation was last used. Erasure drops a conversation at once (``forget_checkpoint``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[float, dict[int, Event]]] = OrderedDict()

    def get(self, sender_id: str) -> dict[int, Event]:
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(sender_id)
            if kept is None or now - kept[0] > CACHE_SECONDS:
                return {}
            return dict(kept[1])

    def put(self, sender_id: str, pairs: Iterable[tuple[int, Event]]) -> None:
        now = time.monotonic()
        with self._lock:
            old = self._kept.pop(sender_id, None)
            events = dict(old[1]) if old is not None and now - old[0] <= CACHE_SECONDS else {}
            events.update((row_id, event) for row_id, event in pairs if row_id > 0)
            if len(events) > CACHE_EVENTS:
                events = dict(sorted(events.items())[-CACHE_EVENTS:])
            self._kept[sender_id] = (now, events)
            while len(self._kept) > CACHE_CONVERSATIONS:
                self._kept.popitem(last=False)
            # Conversations idle too long go too (the oldest come first).
            while self._kept and now - next(iter(self._kept.values()))[0] > CACHE_SECONDS:
                self._kept.popitem(last=False)

    def forget(self, sender_id: str) -> None:
        with self._lock:
            self._kept.pop(sender_id, None)


class BoundedSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store, bounded: a turn reads and writes a fixed amount whatever the history."""

    def __init__(self, *args: Any, max_turns: int | str = DEFAULT_MAX_TURNS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_turns = max(1, int(max_turns))
        self._events = EventCache()
        old: Any = self.engine  # type: ignore[has-type]  # set by Rasa's __init__
        if isinstance(old.pool, sa.pool.NullPool):
            # SQLAlchemy 1.4 opens a SQLite file anew for every checkout (NullPool): a few per cent of
            # the Rasa process's busy time under load. Keep connections, usable from the worker threads.
            self.engine = sa.create_engine(old.url, poolclass=sa.pool.QueuePool, pool_size=8, max_overflow=8,
                                           connect_args={"check_same_thread": False, "timeout": 30})
            # Write-ahead log: a turn's reads do not wait for another conversation's write.
            sa.event.listen(self.engine, "connect", _sqlite_wal)
            self.sessionmaker.configure(bind=self.engine)
            old.dispose()
        _meta.create_all(self.engine)
        # Range reads by conversation and id (Rasa indexes sender_id alone).
        with self.engine.begin() as c:
            c.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_events_sender_id_id ON events (sender_id, id)"))
        # Every turn's statements, built once with bound parameters: SQLAlchemy keeps a statement's
        # cache key and compiled form, while a statement built per call is walked again each time
        # (a tenth of the Rasa process's busy time under load, docs/scaling.md).
        events = self.SQLEvent.__table__
        self._insert_event = events.insert()
        self._read_events = sa.select(events.c.id, events.c.data).where(
            events.c.sender_id == sa.bindparam("sid"), events.c.id >= sa.bindparam("first")).order_by(events.c.id)
        self._read_checkpoint = sa.select(checkpoints.c.event_id, checkpoints.c.state).where(
            checkpoints.c.sender_id == sa.bindparam("sid"))
        self._drop_checkpoint = sa.delete(checkpoints).where(checkpoints.c.sender_id == sa.bindparam("sid"))
        self._insert_checkpoint = checkpoints.insert()
        self._drop_message_id = sa.delete(message_ids).where(
            message_ids.c.sender_id == sa.bindparam("sid"), message_ids.c.message_id == sa.bindparam("mid"))
        self._insert_message_id = message_ids.insert()
        self._any_event = sa.select(events.c.id).where(events.c.sender_id == sa.bindparam("sid")).limit(1)
        self._read_latest = sa.select(events.c.type_name, events.c.data).where(
            events.c.sender_id == sa.bindparam("sid"), events.c.type_name.in_(("bot", "user"))
        ).order_by(events.c.id.desc()).limit(sa.bindparam("n"))

    # ------------------------------------------------------------ reading

    def _load(self, sender_id: str, full: bool) -> DialogueStateTracker | None:
        with self.engine.connect() as c:
            point = None if full else c.execute(self._read_checkpoint, {"sid": sender_id}).first()
            if point is None and not full:
                if c.execute(self._any_event, {"sid": sender_id}).first() is None:
                    return None  # a new conversation (every shopper's first message): nothing to read
                # No checkpoint yet (a conversation older than this store): Rasa's own query.
                with self.session_scope() as session:
                    rows = [(r.id, r.data) for r in self._event_query(session, sender_id, False).all()]
                return self._build(sender_id, rows, None)
            first = point.event_id if point is not None else 0
            rows = [(r.id, r.data) for r in c.execute(self._read_events, {"sid": sender_id, "first": first})]
        return self._build(sender_id, rows, json.loads(point.state) if point is not None else None)

    def _build(self, sender_id: str, rows: list[tuple[int, str]], state: dict[str, Any] | None
               ) -> DialogueStateTracker | None:
        if not rows:
            return None
        known = self._events.get(sender_id)
        events: list[Event] = []
        read: list[tuple[int, Event]] = []
        for row_id, data in rows:
            event = known.get(row_id)
            if event is None:
                found = deserialise_events([json.loads(data)])
                if not found:  # an unreadable row is left out, as Rasa leaves it out
                    continue
                event = _mark(found[0], row_id)
                read.append((row_id, event))
            events.append(event)
        self._events.put(sender_id, read)
        if not events:
            return None
        prefix = state_events(state, events[0].timestamp) if state else []
        tracker = self.init_tracker(sender_id)
        for e in prefix + events:
            tracker.update(e)
        return tracker

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation from its checkpoint on, in the state it has now."""
        return await asyncio.to_thread(self._load, sender_id, False)

    async def retrieve_full_tracker(self, conversation_id: str) -> DialogueStateTracker | None:
        """Every event of every session (the console's transcript, exports)."""
        return await asyncio.to_thread(self._load, conversation_id, True)

    async def exists(self, conversation_id: str) -> bool:
        def query() -> bool:
            with self.engine.connect() as c:
                return c.execute(self._any_event, {"sid": conversation_id}).first() is not None
        return await asyncio.to_thread(query)

    # ------------------------------------------------------------ writing

    def _write(self, tracker: DialogueStateTracker) -> list[Event]:
        events = list(tracker.events)
        last = max((i for i, e in enumerate(events) if _row_of(e) is not None), default=-1)
        new = events[last + 1:]
        sender = tracker.sender_id
        with self.engine.begin() as c:
            for event in new:
                inserted = c.execute(self._insert_event, _row_fields(sender, event))
                row_id = int(inserted.inserted_primary_key[0])
                _mark(event, row_id)
                message_id = getattr(event, "message_id", None) if isinstance(event, UserUttered) else None
                if message_id:
                    mid = str(message_id)[:255]
                    c.execute(self._drop_message_id, {"sid": sender, "mid": mid})
                    c.execute(self._insert_message_id, {"sender_id": sender, "message_id": mid, "event_id": row_id})
            self._move_checkpoint(c, tracker, events)
        self._events.put(sender, [(_row_of(e) or 0, e) for e in new])
        return new

    def _move_checkpoint(self, c: Any, tracker: DialogueStateTracker, events: list[Event]) -> None:
        stored = [e for e in events if (_row_of(e) or 0) > 0]
        if not stored:
            return
        start = stored[tail_start(stored, self.max_turns)]
        # The state just before ``start``: replay what comes before it (bounded: this tracker is).
        before = tracker.init_copy()
        for e in events:
            if e is start:
                break
            before.update(e)
        at_session_start = isinstance(start, SessionStarted) or (
            isinstance(start, ActionExecuted) and start.action_name == ACTION_SESSION_START_NAME)
        # A session start resets the state: the tracker is then exactly Rasa's (since the session began).
        state = json.dumps(EMPTY if at_session_start else state_of(before), ensure_ascii=False, default=str)
        c.execute(self._drop_checkpoint, {"sid": tracker.sender_id})
        c.execute(self._insert_checkpoint, {"sender_id": tracker.sender_id, "event_id": _row_of(start), "state": state})

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the events added since the tracker was read, then publish exactly those."""
        new = await asyncio.to_thread(self._write, tracker)
        if self.event_broker is not None and new:
            await self._stream_new_events(self.event_broker, new, tracker.sender_id)

    def forget_checkpoint(self, sender_id: str) -> None:
        """Drop the conversation's checkpoint (it holds slot values) and its events kept in memory:
        erasure calls this."""
        self._events.forget(sender_id)
        with self.engine.begin() as c:
            c.execute(self._drop_checkpoint, {"sid": sender_id})

    # ------------------------------------------------------------ the channels' bounded reads

    async def has_message(self, sender_id: str, message_id: str) -> bool:
        """Whether the conversation already holds a shopper message with this id (indexed)."""
        def query() -> bool:
            with self.engine.connect() as c:
                return c.execute(sa.select(message_ids.c.event_id).where(
                    message_ids.c.sender_id == sender_id, message_ids.c.message_id == message_id[:255]
                )).first() is not None
        return await asyncio.to_thread(query)

    async def latest_turn(self, sender_id: str, limit: int = LATEST_TURN_ROWS) -> list[Event]:
        """The conversation's shopper and bot messages from the shopper's latest message on, oldest first
        (at most ``limit``): what the bot offered last, without loading the tracker."""
        def query() -> list[dict[str, Any]]:
            newest_first: list[dict[str, Any]] = []
            with self.engine.connect() as c:
                for row in c.execute(self._read_latest, {"sid": sender_id, "n": limit}):
                    newest_first.append(json.loads(row.data))  # only up to the shopper's message
                    if row.type_name == "user":
                        break
            return newest_first[::-1]

        return deserialise_events(await asyncio.to_thread(query))

    async def recent_messages(self, sender_id: str, after_ts: float, limit: int,
                              keep: Callable[[dict[str, Any]], bool] = lambda _: True,
                              kinds: Iterable[str] = ("bot", "user")) -> list[dict[str, Any]]:
        """The newest ``limit`` bot/user events newer than ``after_ts`` that ``keep`` accepts, oldest first.

        Read newest first, a page at a time, so a long conversation costs what its last page does.
        """
        table = self.SQLEvent.__table__
        wanted = list(kinds)

        def query() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            below: int | None = None
            page = max(50, limit * 2)
            with self.engine.connect() as c:
                while len(out) < limit:
                    q = sa.select(table.c.id, table.c.timestamp, table.c.data).where(
                        table.c.sender_id == sender_id, table.c.type_name.in_(wanted))
                    if below is not None:
                        q = q.where(table.c.id < below)
                    rows = c.execute(q.order_by(table.c.id.desc()).limit(page)).all()
                    if not rows:
                        break
                    newer = [r for r in rows if (r.timestamp or 0) > after_ts]
                    out.extend(d for d in (json.loads(r.data) for r in newer) if keep(d))
                    if not newer:
                        break  # everything older than the page's last reconnect point
                    below = rows[-1].id
            return out[:limit][::-1]
        return await asyncio.to_thread(query)


def bounded(store: Any) -> BoundedSQLTrackerStore | None:
    """This store behind the agent's wrappers (awaitable, fail-safe), or None for another kind."""
    for _ in range(5):
        if isinstance(store, BoundedSQLTrackerStore):
            return store
        store = getattr(store, "_tracker_store", None)
    return None
