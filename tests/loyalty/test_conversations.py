"""Conversation facts (turns, fallbacks, handoffs) and the dashboard's bot figures, computed by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.conversations import service as conversations
from loyalty.conversations.models import Conversation
from loyalty.handoff.models import Handoff
from loyalty.reports import service as reports
from loyalty.reports.service import Scope
from tests.loyalty.corekit import T0
from tests.loyalty.test_reports import DAY, _fixture

MIN = timedelta(minutes=1)


def turn(sender: str, channel: str, at: Any, fallback: bool = False) -> int:
    return db.run(conversations.record_turn, sender, channel, at, fallback=fallback)


def talk() -> dict[str, int]:
    """Five conversations (the fixture's members are o-1 and o-3 on WeChat, v-2 on web chat)."""
    f = _fixture()
    a = turn("o-1", "wechat", T0)  # A: m1, three turns, one not understood, no agent
    assert turn("o-1", "wechat", T0 + 10 * MIN, fallback=True) == a
    assert turn("o-1", "wechat", T0 + 20 * MIN) == a
    b = turn("o-1", "wechat", T0 + 5 * 60 * MIN)  # B: over 4 hours later, a new conversation
    assert b != a
    assert db.run(conversations.record_handoff, "o-1", T0 + 301 * MIN)
    turn("o-1", "wechat", T0 + 302 * MIN, fallback=True)  # with the agent: not the bot's fallback
    db.run(conversations.record_handback, "o-1", T0 + 310 * MIN)
    turn("o-1", "wechat", T0 + 311 * MIN, fallback=True)  # the bot's again
    turn("v-2", "webchat", T0 + DAY, fallback=True)  # C: m2
    turn("o-3", "wechat", T0 + DAY)  # D: m3 (store B), handed off
    db.run(conversations.record_handoff, "o-3", T0 + DAY + MIN)
    turn("visitor-9", "webchat", T0 + DAY)  # E: nobody's, two turns
    turn("visitor-9", "webchat", T0 + DAY + 2 * MIN)

    def handoffs(s: Any) -> None:
        for i, (reason, member, at) in enumerate([("request", f["m1"], T0 + 301 * MIN),
                                                  ("complaint", f["m3"], T0 + DAY + MIN)]):
            s.add(Handoff(sender_id=f"s{i}", channel="wechat", member_id=member, reason=reason, priority=0,
                          language="zh", status="queued", created_at=at))

    db.run(handoffs)
    return {**f, "a": a, "b": b}


def test_conversations_are_split_by_silence_and_keep_no_sender_id(engine: Engine) -> None:
    f = talk()
    rows = db.run(lambda s: [(c.id, c.member_id, c.user_turns, c.agent_turns, c.fallback_turns, c.handed_off,
                              c.with_agent, c.sender_key) for c in s.execute(
        select(Conversation).order_by(Conversation.id)).scalars()], readonly=True)
    assert [r[:7] for r in rows] == [
        (f["a"], f["m1"], 3, 0, 1, False, False),
        (f["b"], f["m1"], 3, 1, 1, True, False),
        (rows[2][0], f["m2"], 1, 0, 1, False, False),
        (rows[3][0], f["m3"], 1, 0, 0, True, True),
        (rows[4][0], None, 2, 0, 0, False, False),
    ]
    assert all("o-1" not in r[7] and len(r[7]) == 64 for r in rows)
    assert not db.run(conversations.record_handoff, "nobody", T0)


def test_bot_figures_by_hand(engine: Engine) -> None:
    f = talk()
    whole = Scope(T0 - DAY, T0 + 10 * DAY)
    day0, day1 = T0.date().isoformat(), (T0 + DAY).date().isoformat()
    assert db.run(reports.conversations, whole, readonly=True) == [
        {"day": day0, "channel": "wechat", "conversations": 2, "contained": 1, "handed_off": 1, "user_turns": 6,
         "bot_turns": 5, "fallback_turns": 2},
        {"day": day1, "channel": "webchat", "conversations": 2, "contained": 2, "handed_off": 0, "user_turns": 3,
         "bot_turns": 3, "fallback_turns": 1},
        {"day": day1, "channel": "wechat", "conversations": 1, "contained": 0, "handed_off": 1, "user_turns": 1,
         "bot_turns": 1, "fallback_turns": 0},
    ]
    b = db.run(reports.bot, whole, readonly=True)
    # 5 conversations, 3 never with an agent; the bot answered 3 + 2 + 1 + 1 + 2 = 9 turns, 3 not understood.
    assert (b["conversations"], b["contained"], b["containment"]) == (5, 3, 0.6)
    assert (b["bot_turns"], b["fallback_turns"], b["fallback_rate"]) == (9, 3, round(3 / 9, 4))
    assert b["handoff_rate"] == {"complaint": 0.2, "request": 0.2}
    # Store A: conversations A, B (m1) and C (m2); the request handoff is m1's.
    a = db.run(reports.bot, Scope(T0 - DAY, T0 + 10 * DAY, store_id=f["a"]), readonly=True)
    assert (a["conversations"], a["containment"]) == (3, round(2 / 3, 4))
    assert a["handoff_rate"] == {"request": round(1 / 3, 4)}
    web = db.run(reports.bot, Scope(T0 - DAY, T0 + 10 * DAY, channel="webchat"), readonly=True)
    assert (web["conversations"], web["containment"], web["fallback_rate"]) == (2, 1.0, round(1 / 3, 4))
    none = db.run(reports.bot, Scope(T0 + 5 * DAY, T0 + 6 * DAY), readonly=True)
    assert (none["conversations"], none["containment"], none["fallback_rate"]) == (0, None, None)


def test_migration_0009_goes_down_and_up(engine: Engine) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    turn("o-9", "wechat", T0)
    _downgrade(engine, "0008")
    assert "conversations" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, "0009")
    assert migrate.current(engine) == "0009"
    migrate.upgrade(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("conversations")}
    assert columns == set(Conversation.__table__.columns.keys())
