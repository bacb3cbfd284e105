"""Scores of bot-only conversations: once per sender and session, refused when not 1-5, erased with the
account, and the dashboard's bot satisfaction beside the agents', computed by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.conversations import service as conversations
from loyalty.conversations.models import BotRating
from loyalty.errors import InvalidInput
from loyalty.handoff.models import Handoff
from loyalty.membership import service as membership
from loyalty.reports import service as reports
from loyalty.reports.service import Scope
from tests.loyalty.corekit import T0, join
from tests.loyalty.test_reports import DAY, _fixture

HOUR = timedelta(hours=1)


def rate(sender: str, score: object, session: datetime, at: datetime, channel: str = "wechat") -> bool:
    return db.run(conversations.rate_bot, sender, channel, score, session_started_at=session, now=at)


def ratings() -> list[tuple[str, str, int | None, int, datetime]]:
    return db.run(lambda s: [(r.sender_key, r.channel, r.member_id, r.rating, r.rated_at) for r in s.execute(
        select(BotRating).order_by(BotRating.id)).scalars()], readonly=True)


def test_one_score_per_sender_and_session_the_first_counts(engine: Engine) -> None:
    f = _fixture()  # o-1 is m1's WeChat address
    assert rate("o-1", "5", T0, T0 + HOUR)
    assert not rate("o-1", 5, T0, T0 + HOUR)  # the action retried
    assert not rate("o-1", "2", T0, T0 + 2 * HOUR)  # a second score in the same session
    assert rate("o-1", 3, T0 + DAY, T0 + DAY + HOUR)  # the next session
    assert rate("visitor-9", 4, T0, T0 + HOUR, channel="webchat")  # nobody's address: no member
    rows = ratings()
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("wechat", f["m1"], 5, T0 + HOUR), ("wechat", f["m1"], 3, T0 + DAY + HOUR), ("webchat", None, 4, T0 + HOUR)]
    assert rows[0][0] == conversations.sender_key("o-1") and all("o-1" not in r[0] for r in rows)


@pytest.mark.parametrize("bad", ["0", "6", "abc", "", None, True, "4.5", -1, "五"])
def test_a_score_not_from_1_to_5_is_refused_and_nothing_is_written(engine: Engine, bad: object) -> None:
    with pytest.raises(InvalidInput) as e:
        rate("o-1", bad, T0, T0 + HOUR)
    assert e.value.code == "invalid_rating"
    assert ratings() == []


def test_the_database_refuses_an_out_of_range_score_too(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        db.run(lambda s: (s.add(BotRating(sender_key="k", session_started_at=T0, channel="wechat", rating=6,
                                          rated_at=T0)), s.flush()))


def test_closing_an_account_erases_its_bot_ratings_also_those_from_before_it_was_linked(engine: Engine) -> None:
    rate("o-7", 2, T0, T0 + HOUR)  # a visitor rates, then joins through the same chat
    m = join(T0 + DAY, channel="wechat", external_id="o-7")
    rate("o-7", 5, T0 + DAY, T0 + DAY + HOUR)
    other = join(T0, channel="wechat", external_id="o-8")
    rate("o-8", 4, T0, T0 + HOUR)
    assert [r[2] for r in ratings()] == [None, m, other]
    db.run(membership.close_account, m, actor="member", now=T0 + 2 * DAY)
    assert [(r[2], r[3]) for r in ratings()] == [(other, 4)]


def test_bot_satisfaction_beside_the_agents_by_hand(engine: Engine) -> None:
    f = _fixture()  # m1 (o-1) and m2 (v-2) of store A, m3 (o-3) of store B
    rate("o-1", 5, T0, T0 + HOUR)
    rate("v-2", 3, T0, T0 + 2 * HOUR, channel="webchat")
    rate("o-3", 1, T0, T0 + DAY)
    rate("visitor-9", 4, T0, T0 + 20 * DAY, channel="webchat")  # outside the range below

    def handoff(s: Any) -> None:  # an agent conversation rated 2: the agents' figure only
        s.add(Handoff(sender_id="o-1", channel="wechat", member_id=f["m1"], reason="request", priority=0,
                      language="zh", status="closed", created_at=T0, rating=2, rated_at=T0 + HOUR))

    db.run(handoff)

    def bot(**scope: Any) -> tuple[Any, ...]:
        b = db.run(reports.bot, Scope(T0 - DAY, T0 + 10 * DAY, **scope), readonly=True)
        return b["rated"], b["satisfaction"], b["bot_rated"], b["bot_satisfaction"]

    assert bot() == (1, 2.0, 3, 3.0)  # (5 + 3 + 1) / 3
    assert bot(store_id=f["a"]) == (1, 2.0, 2, 4.0)  # m1 and m2: (5 + 3) / 2
    assert bot(store_id=f["b"]) == (0, None, 1, 1.0)
    assert bot(channel="webchat") == (0, None, 1, 3.0)
    empty = db.run(reports.bot, Scope(T0 + 30 * DAY, T0 + 31 * DAY), readonly=True)
    assert (empty["bot_rated"], empty["bot_satisfaction"]) == (0, None)
    # Two more visitors on the web chat, rated on day 2 (the range is half-open: not in [T0, T0 + 2 days)).
    rate("visitor-9", 3, T0 + DAY, T0 + 2 * DAY, channel="webchat")
    rate("visitor-10", 3, T0, T0 + 2 * DAY, channel="webchat")
    assert bot(channel="webchat") == (0, None, 3, 3.0)
    assert bot(store_id=f["a"], channel="wechat") == (1, 2.0, 1, 5.0)
    assert db.run(reports.bot, Scope(T0, T0 + 2 * DAY), readonly=True)["bot_satisfaction"] == 3.0
    dashboard = db.run(reports.dashboard, Scope(T0 - DAY, T0 + 10 * DAY), T0 + 3 * DAY, readonly=True)
    assert (dashboard["bot"]["bot_rated"], dashboard["bot"]["bot_satisfaction"]) == (5, round(15 / 5, 2))
    zh, en = dashboard["definitions"]["bot"]
    assert "机器人满意度" in zh and "bot satisfaction" in en


def test_bot_satisfaction_has_two_decimals(engine: Engine) -> None:
    for i, score in enumerate([5, 4, 4]):
        rate(f"visitor-{i}", score, T0, T0 + HOUR, channel="webchat")
    b = db.run(reports.bot, Scope(T0 - DAY, T0 + DAY), readonly=True)
    assert (b["bot_rated"], b["bot_satisfaction"]) == (3, 4.33)


def test_migration_0016_goes_down_and_up(engine: Engine) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    rate("o-9", 5, T0, T0 + HOUR)
    _downgrade(engine, "0014")
    assert "bot_ratings" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "bot_ratings" in inspect(engine).get_table_names()
    columns = {c["name"] for c in inspect(engine).get_columns("bot_ratings")}
    assert columns == set(BotRating.__table__.columns.keys())
    assert db.run(lambda s: s.execute(select(func.count()).select_from(BotRating)).scalar_one()) == 0
