"""The handoff core: queue order, the race to take, transfer, end, cancel, rating, service hours, agents."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, update
from sqlalchemy.engine import Engine

from loyalty import config, db, migrate
from loyalty.audit import AuditEntry
from loyalty.errors import InvalidInput, NotFound, Refused
from loyalty.handoff import auth, service
from loyalty.handoff.models import Agent, Handoff, HandoffNote
from loyalty.hours import ServiceHours
from loyalty.members.models import Member
from tests.loyalty.corekit import T0, join

# T0 is 12:00 in Shanghai on Monday 2 March 2026: inside the default 09:00-21:00.
PW = "correct horse battery"


def _agent(name: str, role: str = "agent") -> int:
    return db.run(auth.create_agent, name, PW, role=role).id


def _tier(member_id: int, tier: str) -> None:
    db.run(lambda s: s.execute(update(Member).where(Member.id == member_id).values(tier=tier)))


def _ask(sender: str, at: datetime = T0, **kw: Any) -> service.Ticket:
    kw.setdefault("channel", "webchat")
    kw.setdefault("reason", "request")
    return db.run(service.request, sender_id=sender, now=at, **kw)


# ---------------------------------------------------------------- queue


def test_queue_puts_priority_tiers_first_then_the_longest_waiting(engine: Engine) -> None:
    plain, gold, platinum = join(), join(), join()
    _tier(gold, "gold")
    _tier(platinum, "platinum")
    silver = join()
    _tier(silver, "silver")  # silver has no priority service: waits like everybody
    t1 = _ask("web-a", T0, member_id=plain)
    t2 = _ask("web-b", T0 + timedelta(minutes=1), member_id=silver)
    t3 = _ask("web-c", T0 + timedelta(minutes=2), member_id=gold)
    t4 = _ask("wx-d", T0 + timedelta(minutes=3), channel="wechat")
    t5 = _ask("web-e", T0 + timedelta(minutes=4), member_id=platinum, reason="complaint")
    order = [h.sender_id for h in db.run(service.queue, readonly=True)]
    assert order == ["web-e", "web-c", "web-a", "web-b", "wx-d"]
    assert (t1.position, t2.position, t3.position, t4.position, t5.position) == (1, 2, 1, 4, 1)
    assert t3.priority and t5.priority and not t1.priority and not t2.priority
    # Places as they are now, after the priority members cut in.
    now = T0 + timedelta(minutes=5)
    assert [db.run(service.ticket, t.handoff_id, now).position for t in (t1, t2, t3, t4, t5)] == [3, 4, 2, 5, 1]


def test_asking_again_while_waiting_keeps_the_same_place(engine: Engine) -> None:
    first = _ask("web-a")
    _ask("web-b", T0 + timedelta(minutes=1))
    again = _ask("web-a", T0 + timedelta(minutes=2), reason="complaint")
    assert again.handoff_id == first.handoff_id and not again.created and again.position == 1
    assert db.run(lambda s: s.execute(select(func.count()).select_from(Handoff)).scalar_one()) == 2


def test_concurrent_requests_of_one_conversation_make_one_handoff(engine: Engine) -> None:
    barrier = threading.Barrier(6)
    ids: list[int] = []

    def go() -> None:
        barrier.wait()
        ids.append(_ask("web-same").handoff_id)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 6
    assert db.run(lambda s: s.execute(select(func.count()).select_from(Handoff)).scalar_one()) == 1


def test_bad_requests_are_refused_and_write_nothing(engine: Engine) -> None:
    with pytest.raises(InvalidInput) as e:
        _ask("web-a", reason="bored")
    assert e.value.code == "invalid_reason"
    with pytest.raises(InvalidInput):
        _ask("", reason="request")
    with pytest.raises(InvalidInput):
        _ask("x" * 200)
    assert db.run(service.queue) == []


def test_a_closed_member_still_gets_a_person_without_a_profile(engine: Engine) -> None:
    m = join()
    db.run(lambda s: s.execute(update(Member).where(Member.id == m).values(status="closed")))
    t = _ask("web-a", member_id=m)
    assert db.run(service.get, t.handoff_id).member_id is None


def test_expected_wait_uses_recent_waits(engine: Engine) -> None:
    config.use(dataclasses.replace(config.settings(), handoff_wait_minutes=4))
    t = _ask("web-first")
    assert t.wait_minutes == 4  # no history yet: the configured guess per place
    a = _agent("anna")
    # Three earlier conversations were each taken after 10 minutes.
    for i in range(3):
        start = T0 - timedelta(hours=1, minutes=i * 20)
        h = _ask(f"web-old{i}", start)
        db.run(service.take, h.handoff_id, a, start + timedelta(minutes=10))
        db.run(service.close, h.handoff_id, agent_id=a, now=start + timedelta(minutes=15))
    second = _ask("web-second", T0 + timedelta(minutes=1))
    assert second.position == 2 and second.wait_minutes == 20


# ---------------------------------------------------------------- take, transfer, close


def test_two_agents_racing_for_one_conversation_exactly_one_wins(engine: Engine) -> None:
    agents = [_agent(f"racer{i}") for i in range(8)]
    h = _ask("web-race")
    barrier = threading.Barrier(len(agents))
    won: list[int] = []
    lost: list[str] = []

    def go(agent_id: int) -> None:
        barrier.wait()
        try:
            db.run(service.take, h.handoff_id, agent_id, T0)
            won.append(agent_id)
        except Refused as exc:
            lost.append(exc.code)

    threads = [threading.Thread(target=go, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and lost == ["already_taken"] * 7
    row = db.run(service.get, h.handoff_id)
    assert row.status == "active" and row.agent_id == won[0]
    takes = db.run(lambda s: s.execute(select(func.count()).select_from(AuditEntry)
                                       .where(AuditEntry.action == "handoff_take")).scalar_one())
    assert takes == 1


def test_transfer_is_for_the_agent_or_a_supervisor(engine: Engine) -> None:
    anna, ben, carl, boss = _agent("anna"), _agent("ben"), _agent("carl"), _agent("boss", "supervisor")
    h = _ask("web-a").handoff_id
    with pytest.raises(Refused) as e:
        db.run(service.transfer, h, agent_id=anna, to_agent_id=ben)
    assert e.value.code == "not_active"  # nobody has it yet
    db.run(service.take, h, anna)
    with pytest.raises(Refused) as e:
        db.run(service.transfer, h, agent_id=ben, to_agent_id=ben)
    assert e.value.code == "not_yours"
    with pytest.raises(Refused) as e:
        db.run(service.transfer, h, agent_id=anna, to_agent_id=anna)
    assert e.value.code == "same_agent"
    assert db.run(service.transfer, h, agent_id=anna, to_agent_id=ben).agent_username == "ben"
    assert db.run(service.transfer, h, agent_id=boss, to_agent_id=carl).agent_username == "carl"
    with pytest.raises(NotFound):
        db.run(service.transfer, h, agent_id=carl, to_agent_id=99999)
    notes = db.run(service.notes, h)
    assert [n.text for n in notes] == ["transfer → ben", "transfer → carl"] and {n.kind for n in notes} == {"system"}


def test_close_ends_once_and_only_by_its_agent(engine: Engine) -> None:
    anna, ben = _agent("anna"), _agent("ben")
    h = _ask("web-a").handoff_id
    db.run(service.take, h, anna)
    with pytest.raises(Refused) as e:
        db.run(service.close, h, agent_id=ben)
    assert e.value.code == "not_yours"
    done = db.run(service.close, h, agent_id=anna, now=T0 + timedelta(minutes=9))
    assert done.status == "closed" and done.closed_by == "anna"
    with pytest.raises(Refused) as e:
        db.run(service.close, h, agent_id=anna)
    assert e.value.code == "not_active"
    assert db.run(service.open_for, "web-a") is None
    # The same conversation can ask for a person again later.
    again = _ask("web-a", T0 + timedelta(hours=1))
    assert again.created and again.handoff_id != h


def test_cancel_while_waiting_but_not_once_taken(engine: Engine) -> None:
    anna = _agent("anna")
    h1 = _ask("web-a").handoff_id
    assert db.run(service.cancel, h1) is True
    assert db.run(service.cancel, h1) is False  # already cancelled: nothing changes twice
    with pytest.raises(Refused) as e:
        db.run(service.take, h1, anna)
    assert e.value.code == "not_waiting"
    h2 = _ask("web-b").handoff_id
    db.run(service.take, h2, anna)
    assert db.run(service.cancel, h2) is False
    assert db.run(service.get, h2).status == "active"


def test_restart_ends_whatever_was_open(engine: Engine) -> None:
    anna = _agent("anna")
    h = _ask("web-a").handoff_id
    db.run(service.take, h, anna)
    ended = db.run(service.end_for_restart, "web-a")
    assert ended is not None and ended.status == "closed" and ended.closed_by == "restart"
    assert db.run(service.end_for_restart, "web-a") is None
    q = _ask("web-b").handoff_id
    assert db.run(service.end_for_restart, "web-b").status == "cancelled"  # type: ignore[union-attr]
    assert db.run(service.get, q).status == "cancelled"


def test_a_deactivated_agent_cannot_take(engine: Engine) -> None:
    anna = _agent("anna")
    db.run(auth.set_active, "anna", False, actor="boss")
    h = _ask("web-a").handoff_id
    with pytest.raises(NotFound):
        db.run(service.take, h, anna)


# ---------------------------------------------------------------- rating, notes


def test_rating_once_within_a_day_of_the_end(engine: Engine) -> None:
    anna = _agent("anna")
    assert db.run(service.rate, "web-a", 5, T0) is None  # nothing to rate yet
    h = _ask("web-a").handoff_id
    db.run(service.take, h, anna)
    end = T0 + timedelta(minutes=5)
    db.run(service.close, h, agent_id=anna, now=end)
    for bad in (0, 6, "x", 4.5, True, None):
        with pytest.raises(InvalidInput):
            db.run(service.rate, "web-a", bad, end)
    rated = db.run(service.rate, "web-a", "4", end + timedelta(minutes=1))
    assert rated is not None and rated.rating == 4
    assert db.run(service.rate, "web-a", 1, end + timedelta(minutes=2)) is None
    assert db.run(service.get, h).rating == 4
    h2 = _ask("web-a", end + timedelta(hours=1)).handoff_id
    db.run(service.take, h2, anna)
    db.run(service.close, h2, agent_id=anna, now=end + timedelta(hours=2))
    assert db.run(service.rate, "web-a", 3, end + timedelta(hours=27)) is None  # too late


def test_notes_are_cleaned_and_kept_in_order(engine: Engine) -> None:
    anna = _agent("anna")
    h = _ask("web-a").handoff_id
    db.run(service.add_note, h, agent_id=anna, text="  会员说收银没给积分\x00\x07\n订单 #123 ")
    db.run(service.add_note, h, agent_id=anna, text="second")
    for bad in ("", "   ", "\x00", "x" * 2001, 5):
        with pytest.raises(InvalidInput):
            db.run(service.add_note, h, agent_id=anna, text=bad)
    texts = [n.text for n in db.run(service.notes, h)]
    assert texts == ["会员说收银没给积分\n订单 #123", "second"]
    assert db.run(lambda s: s.execute(select(func.count()).select_from(HandoffNote)).scalar_one()) == 2


# ---------------------------------------------------------------- service hours


def _hours(**kw: str) -> ServiceHours:
    raw = {"service_hours": "09:00-21:00", "service_days": "1-7", "service_closed_dates": "",
           "service_tz": "Asia/Shanghai", **kw}
    return ServiceHours.parse(**raw)


def _sh(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=config.SHANGHAI)


def test_service_hours_open_close_and_next_opening() -> None:
    hours = _hours(service_hours="09:00-12:00, 13:00-21:00", service_days="1-5",
                   service_closed_dates="2026-03-04")
    assert hours.is_open(_sh(2026, 3, 2, 9)) and hours.is_open(_sh(2026, 3, 2, 20, 59))
    assert not hours.is_open(_sh(2026, 3, 2, 8, 59)) and not hours.is_open(_sh(2026, 3, 2, 21))
    assert not hours.is_open(_sh(2026, 3, 2, 12, 30))
    assert hours.next_opening(_sh(2026, 3, 2, 12, 30)) == _sh(2026, 3, 2, 13)
    assert hours.next_opening(_sh(2026, 3, 2, 22)) == _sh(2026, 3, 3, 9)
    assert hours.next_opening(_sh(2026, 3, 3, 21, 30)) == _sh(2026, 3, 5, 9)  # the 4th is closed
    assert hours.next_opening(_sh(2026, 3, 6, 22)) == _sh(2026, 3, 9, 9)  # weekend
    at = _sh(2026, 3, 2, 10)
    assert hours.next_opening(at) == at
    assert _hours(service_hours="00:00-24:00").is_open(_sh(2026, 3, 1, 23, 59))
    assert hours.describe() == "09:00-12:00, 13:00-21:00"


@pytest.mark.parametrize("field,value", [
    ("service_hours", "9-21"), ("service_hours", "21:00-09:00"), ("service_hours", "09:00-25:00"),
    ("service_hours", ""), ("service_days", "0-5"), ("service_days", "5-1"), ("service_days", "mon"),
    ("service_closed_dates", "2026-02-30"), ("service_tz", "Mars/Olympus"),
])
def test_malformed_service_hours_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError):
        _hours(**{field: value})


def test_service_hours_come_from_the_environment() -> None:
    s = config.from_env({"LOYALTY_SERVICE_HOURS": "10:00-18:00", "LOYALTY_SERVICE_DAYS": "1-5"})
    assert (s.service_hours, s.service_days) == ("10:00-18:00", "1-5")
    with pytest.raises(ValueError, match="LOYALTY_SERVICE_HOURS"):
        config.from_env({"LOYALTY_SERVICE_HOURS": "late"})


def test_out_of_hours_the_shopper_may_leave_a_message(engine: Engine) -> None:
    late = _sh(2026, 3, 2, 22).astimezone(timezone.utc)
    t = _ask("web-night", late)
    assert t.out_of_hours and t.opens_at == _sh(2026, 3, 3, 9) and t.status == "queued"
    assert db.run(service.get, t.handoff_id).out_of_hours
    assert [h.sender_id for h in db.run(service.queue)] == ["web-night"]
    day = _ask("web-day", _sh(2026, 3, 3, 10).astimezone(timezone.utc))
    assert not day.out_of_hours and day.opens_at is None


# ---------------------------------------------------------------- agents


def test_agents_log_in_with_argon2id_passwords(engine: Engine) -> None:
    anna = db.run(auth.create_agent, "Anna", PW, role="supervisor", display_name="安娜")
    assert (anna.username, anna.display_name, anna.supervisor) == ("anna", "安娜", True)
    stored = db.run(lambda s: s.execute(select(Agent.password_hash)).scalar_one())
    assert stored.startswith("$argon2id$") and PW not in stored
    ok = auth.login("ANNA ", PW)
    assert ok.agent is not None and ok.agent.id == anna.id and ok.error is None
    assert auth.login("anna", PW + "x").error == "bad_credentials"
    assert auth.login("nobody", PW).error == "bad_credentials"
    assert auth.login("anna", None).error == "bad_credentials"
    assert auth.login("anna", "x" * 10_000).error == "bad_credentials"


def test_creating_agents_checks_the_input(engine: Engine) -> None:
    _agent("anna")
    for name, pw, role, code in [
        ("anna", PW, "agent", "agent_exists"), ("a", PW, "agent", "invalid_username"),
        ("bob smith", PW, "agent", "invalid_username"), ("bob", "short", "agent", "weak_password"),
        ("bob", " " * 12, "agent", "weak_password"), ("bob", PW, "admin", "invalid_role"),
    ]:
        with pytest.raises((InvalidInput, Refused)) as e:
            db.run(auth.create_agent, name, pw, role=role)
        assert e.value.code == code
    assert [a.username for a in db.run(auth.agents)] == ["anna"]


def test_repeated_failures_lock_the_account_for_a_while(engine: Engine) -> None:
    _agent("anna")
    for _ in range(auth.MAX_FAILURES - 1):
        assert auth.login("anna", "wrong password", T0).error == "bad_credentials"
    locked = auth.login("anna", "wrong password", T0)
    assert locked.error == "locked" and locked.retry_after > 0
    assert auth.login("anna", PW, T0 + timedelta(minutes=1)).error == "locked"  # even the right one
    later = auth.login("anna", PW, T0 + auth.LOCK_FOR + timedelta(seconds=1))
    assert later.agent is not None


# Addresses from the documentation ranges (RFC 5737, RFC 3849).
STRANGER, OFFICE, ELSEWHERE = "203.0.113.7", "198.51.100.2", "192.0.2.44"


def _answers(name: str, address: str, tries: int, at: datetime = T0) -> list[tuple[str | None, int]]:
    """What ``tries`` wrong passwords for ``name`` from ``address`` get, one after another."""
    return [(r.error, r.retry_after) for r in
            (auth.login(name, "wrong password", at + timedelta(seconds=i), address=address) for i in range(tries))]


def test_an_unknown_name_is_answered_and_locked_exactly_as_a_known_one(engine: Engine, monkeypatch: Any) -> None:
    _agent("anna")
    verified: list[str] = []
    real = auth._verify
    monkeypatch.setattr(auth, "_verify", lambda stored, pw: verified.append(stored) or real(stored, pw))
    tries = auth.MAX_FAILURES + 2
    known = _answers("anna", "203.0.113.1", tries)
    # The 5th failure locks for 15 minutes; later tries are told how long is left.
    assert known == [("bad_credentials", 0)] * (auth.MAX_FAILURES - 1) + [("locked", 900), ("locked", 900),
                                                                          ("locked", 899)]
    # Unknown names, plausible or not, and a deactivated agent: the same answers, the same lock.
    db.run(auth.create_agent, "gone", PW)
    db.run(auth.set_active, "gone", False, actor="boss")
    for i, name in enumerate(["nobody", "Not A Name!", "gone"]):
        assert _answers(name, f"203.0.113.{10 + i}", tries) == known, name
    # Each refusal before the lock verified a hash: the dummy one for unknown names (same cost).
    assert len(verified) == 4 * auth.MAX_FAILURES and verified.count(auth._DUMMY_HASH) == 2 * auth.MAX_FAILURES
    # The right password does not get through a lock either, whichever the name.
    assert auth.login("anna", PW, T0 + timedelta(minutes=1), address="203.0.113.1").error == "locked"
    assert auth.login("nobody", PW, T0 + timedelta(minutes=1), address="203.0.113.10").error == "locked"
    later = T0 + auth.LOCK_FOR + timedelta(seconds=10)
    assert auth.login("anna", PW, later, address="203.0.113.1").agent is not None
    assert auth.login("nobody", PW, later, address="203.0.113.10").error == "bad_credentials"


def test_a_strangers_failures_do_not_lock_the_agent_out_elsewhere(engine: Engine) -> None:
    _agent("anna")
    # Up to the address's own limit: every guess at anna's password from the stranger's address.
    answers = _answers("anna", STRANGER, auth.ADDRESS_MAX_FAILURES)
    assert answers[auth.MAX_FAILURES - 1][0] == "locked" and answers[-1][0] == "locked"
    assert auth.login("anna", PW, T0 + timedelta(minutes=1), address=STRANGER).error == "locked"
    # Anna, at her desk, is not affected; nor is a typo of hers there.
    assert auth.login("anna", "typo password", T0 + timedelta(minutes=1), address=OFFICE).error == "bad_credentials"
    ok = auth.login("anna", PW, T0 + timedelta(minutes=1), address=OFFICE)
    assert ok.agent is not None and ok.agent.username == "anna"
    # An audit entry tells supervisors someone was guessing at anna's password.
    locked = db.run(lambda x: x.execute(select(AuditEntry).where(AuditEntry.action == "agent_locked")).scalars().all())
    assert [e.detail["agent"] for e in locked] == ["anna"]


def test_hopping_within_an_ipv6_network_gains_nothing(engine: Engine) -> None:
    _agent("anna")
    for i in range(auth.MAX_FAILURES):
        auth.login("anna", "wrong password", T0, address=f"2001:db8:1:2::{i + 1:x}")
    assert auth.login("anna", PW, T0, address="2001:db8:1:2:ffff::9").error == "locked"
    assert auth.login("anna", PW, T0, address="2001:db8:1:3::1").agent is not None  # another network
    assert auth.client_key("::ffff:203.0.113.7") == STRANGER
    assert auth.client_key(None) == auth.client_key("not an address") == "unknown"


def test_the_address_lock_stops_a_brute_force_over_many_names(engine: Engine) -> None:
    _agent("anna")
    names = [f"user{i:02d}" for i in range(auth.ADDRESS_MAX_FAILURES)]
    answers = [auth.login(n, "password123", T0 + timedelta(seconds=i), address=STRANGER).error
               for i, n in enumerate(names)]
    assert answers == ["bad_credentials"] * (auth.ADDRESS_MAX_FAILURES - 1) + ["locked"]
    # Locked for every name from there, the right password included, until the lock is over.
    soon = T0 + timedelta(minutes=5)
    assert auth.login("anna", PW, soon, address=STRANGER).error == "locked"
    assert auth.login("fresh-name", "password123", soon, address=STRANGER).retry_after > 0
    assert auth.login("anna", PW, soon, address=ELSEWHERE).agent is not None
    assert auth.login("anna", PW, T0 + timedelta(seconds=20) + auth.LOCK_FOR, address=STRANGER).agent is not None


def test_one_name_is_guessed_at_most_max_failures_times_per_lock(engine: Engine) -> None:
    _agent("anna")
    at = T0
    refused = 0
    for _ in range(3):  # three lock periods in a row
        for i in range(auth.MAX_FAILURES + 3):
            r = auth.login("anna", "wrong password", at + timedelta(seconds=i), address=STRANGER)
            refused += r.error == "locked"
        at += auth.LOCK_FOR + timedelta(minutes=1)
    assert refused == 3 * 4  # the 5th guess locks; the 3 after it are not even tried


def test_parallel_guesses_learn_nothing_past_the_lock(engine: Engine) -> None:
    _agent("anna")
    barrier = threading.Barrier(12)
    results: list[str | None] = []

    def guess(i: int) -> None:
        barrier.wait()
        results.append(auth.login("anna", f"wrong password {i}", T0, address=STRANGER).error)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("bad_credentials") == auth.MAX_FAILURES - 1
    assert results.count("locked") == 12 - (auth.MAX_FAILURES - 1)


def test_a_password_reset_unlocks_the_agent(engine: Engine) -> None:
    _agent("anna")
    _answers("anna", STRANGER, auth.MAX_FAILURES)
    assert auth.login("anna", PW, T0, address=STRANGER).error == "locked"
    db.run(auth.set_password, "anna", "a brand new password", actor="boss")
    assert auth.login("anna", "a brand new password", T0, address=STRANGER).agent is not None


def test_password_change_and_deactivation_end_sessions(engine: Engine) -> None:
    anna = db.run(auth.create_agent, "anna", PW)
    assert db.run(auth.session_agent, anna.id, anna.session_version) is not None
    with pytest.raises(Refused):
        db.run(auth.change_password, anna.id, "not the password", "a brand new password")
    changed = db.run(auth.change_password, anna.id, PW, "a brand new password")
    assert db.run(auth.session_agent, anna.id, anna.session_version) is None
    assert db.run(auth.session_agent, anna.id, changed.session_version) is not None
    assert auth.login("anna", PW).error == "bad_credentials"
    assert auth.login("anna", "a brand new password").agent is not None
    db.run(auth.set_active, "anna", False, actor="boss")
    assert db.run(auth.session_agent, anna.id, changed.session_version) is None
    assert auth.login("anna", "a brand new password").error == "bad_credentials"


def _downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migration_0002_goes_down_and_up(sqlite_engine: Engine) -> None:
    _downgrade(sqlite_engine, "0001")
    assert migrate.current(sqlite_engine) == "0001"
    migrate.upgrade(sqlite_engine, "0002")
    assert migrate.current(sqlite_engine) == "0002"
    assert db.run(service.queue) == []


def test_migration_0003_keeps_the_agents(engine: Engine) -> None:
    _agent("anna")
    auth.login("anna", "wrong password", address="203.0.113.7")
    _downgrade(engine, "0002")
    assert migrate.current(engine) == "0002"
    assert "login_throttles" not in inspect(engine).get_table_names()
    assert {"failed_logins", "locked_until"} <= {c["name"] for c in inspect(engine).get_columns("agents")}
    migrate.upgrade(engine, "0003")
    assert migrate.current(engine) == "0003"
    assert "failed_logins" not in {c["name"] for c in inspect(engine).get_columns("agents")}
    migrate.upgrade(engine)  # and on to the newest revision, with the agents still there
    assert auth.login("anna", PW, address="203.0.113.7").agent is not None


def test_the_opening_is_said_in_the_shoppers_words(engine: Engine) -> None:
    night = _sh(2026, 3, 2, 22).astimezone(timezone.utc)  # a Monday
    t = _ask("web-night", night)
    assert service.opening_text(t, "zh", night) == "明天 09:00"
    assert service.opening_text(t, "en", night) == "tomorrow at 09:00"
    early = _sh(2026, 3, 2, 7).astimezone(timezone.utc)
    assert service.opening_text(db.run(service.ticket, t.handoff_id, early), "zh", early) == "今天 09:00"
    config.use(dataclasses.replace(config.settings(), service_days="1-5"))
    friday = _sh(2026, 3, 6, 22).astimezone(timezone.utc)
    weekend = db.run(service.ticket, t.handoff_id, friday)
    assert service.opening_text(weekend, "zh", friday) == "3月9日周一 09:00"
    assert service.opening_text(weekend, "en", friday) == "Mon 9 Mar at 09:00"
    day = _sh(2026, 3, 9, 10).astimezone(timezone.utc)
    assert service.opening_text(db.run(service.ticket, t.handoff_id, day), "zh", day) == ""


def test_the_cli_creates_agents_with_a_password_from_stdin_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from loyalty.apps import cli

    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    assert cli.main(["agent", "create", "Boss", "--role", "supervisor", "--name", "老板", "--password-stdin"]) == 0
    assert "supervisor 'boss' created" in capsys.readouterr().out
    assert auth.login("boss", PW).agent is not None
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["agent", "create", "shorty", "--password-stdin"]) == 2
    assert "weak_password" in capsys.readouterr().err
    # No terminal and no --password-stdin: refused rather than reading a password from anywhere else.
    monkeypatch.setattr("sys.stdin", io.StringIO(PW + "\n"))
    assert cli.main(["agent", "create", "quiet"]) == 2
    assert cli.main(["agent", "create", "x", "--password", PW]) == 2  # no such flag: never on the command line
    monkeypatch.setattr("sys.stdin", io.StringIO("a new long password\n"))
    assert cli.main(["agent", "password", "boss", "--password-stdin"]) == 0
    assert auth.login("boss", "a new long password").agent is not None
    assert cli.main(["agent", "deactivate", "boss"]) == 0
    assert auth.login("boss", "a new long password").error == "bad_credentials"
    assert cli.main(["agent", "list"]) == 0
    assert "deactivated" in capsys.readouterr().out
