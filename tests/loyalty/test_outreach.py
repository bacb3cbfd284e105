"""Outreach on SQLite and PostgreSQL: journeys fire when due and only then; the rules; exactly once; the holdout."""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, update

from loyalty import db
from loyalty.apps.demo.response import respond
from loyalty.config import SmsSettings
from loyalty.errors import InvalidInput
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.outreach import delivery, report, rules
from loyalty.outreach import service as svc
from loyalty.outreach.models import InboxMessage, OutreachSend
from loyalty.outreach.preview import preview
from loyalty.outreach.settings import OutreachSettings
from loyalty.sms.aliyun import AliyunSms
from tests.loyalty.corekit import buy, join, many_members

# 10:00 in Shanghai: outside the quiet hours.
DAY = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
CFG = OutreachSettings(holdout_percent=10.0)
WEB = {"webchat": delivery.InboxTransport()}


def web_member(now: datetime = DAY, **kw: Any) -> int:
    mid = join(now=now, **kw)
    db.run(members.bind_identity, mid, "webchat", f"v{mid}")
    return mid


def web_members(n: int) -> list[int]:
    """``n`` members who joined at DAY, each with a web chat address."""
    ids = many_members(n, DAY)
    db.run(lambda s: s.execute(update(Member).values(created_at=DAY)))
    for mid in ids:
        db.run(members.bind_identity, mid, "webchat", f"v{mid}")
    return ids


def plan(journey: str, now: datetime, cfg: OutreachSettings = CFG) -> svc.Plan:
    return db.run(svc.plan_journey, journey, now, cfg)


def sends(**where: Any) -> list[OutreachSend]:
    def q(s: Any) -> list[OutreachSend]:
        stmt = select(OutreachSend).order_by(OutreachSend.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(OutreachSend, k) == v)
        return list(s.execute(stmt).scalars())
    return db.run(q, readonly=True)


def deliver(now: datetime, transports: Any = WEB, cfg: OutreachSettings = CFG) -> delivery.Tally:
    total = delivery.Tally()
    while True:
        t = delivery.deliver_due("w1", transports, now=now, limit=50, cfg=cfg)
        if not (t.sent or t.skipped or t.failed or t.held):
            return total
        total = delivery.Tally(total.sent + t.sent, total.skipped + t.skipped, total.failed + t.failed,
                               total.held + t.held)


def treated(mid: int, journey: str) -> bool:
    return not rules.in_control(mid, journey, CFG.holdout_percent)


def test_welcome_fires_on_day_zero_and_day_three_only_without_an_order(engine: Any) -> None:
    a, b = web_member(), web_member()
    plan("welcome", DAY + timedelta(hours=1))
    assert {(x.member_id, x.step) for x in sends()} == {(a, "day0"), (b, "day0")}
    buy(b, "50.00", DAY + timedelta(days=1))
    for day in (1, 2):
        plan("welcome", DAY + timedelta(days=day))
    assert len(sends()) == 2  # nothing new on days 1 and 2
    plan("welcome", DAY + timedelta(days=3, hours=1))
    plan("welcome", DAY + timedelta(days=3, hours=2))  # again: nothing twice
    assert [x.member_id for x in sends(step="day3")] == [a]


def test_birthday_week_and_29_february_in_a_common_year(engine: Any) -> None:
    leap = web_member(birthday="2000-02-29")
    march = web_member(birthday="1990-03-20")
    feb20 = datetime(2027, 2, 20, 2, 0, tzinfo=timezone.utc)  # 2027 is a common year
    plan("birthday", feb20)
    assert sends() == []  # 28 February is 8 days away
    plan("birthday", feb20 + timedelta(days=2))
    got = sends()
    assert [(x.member_id, x.facts["date"]) for x in got] == [(leap, "2027-02-28")]
    assert march not in [x.member_id for x in got]


def test_points_expiring_at_30_and_7_days_and_coupon_at_3(engine: Any) -> None:
    mid = web_member()
    buy(mid, "120.00", DAY)
    lot_expiry = db.run(lambda s: s.execute(select(func.min(delivery.svc.Member.id))).scalar(), readonly=True)
    assert lot_expiry
    from loyalty.points.models import PointsLot
    expires = db.run(lambda s: s.execute(select(PointsLot.expires_at)).scalar(), readonly=True)
    day30 = expires - timedelta(days=30)
    plan("points_expiring", day30 - timedelta(days=1))
    assert sends() == []
    plan("points_expiring", day30)
    plan("points_expiring", expires - timedelta(days=7))
    got = sends()
    assert [(x.step, x.facts["points"]) for x in got] == [("d30", 120), ("d7", 120)]
    assert {x.kind for x in got} == {"service"}


def test_opted_out_and_over_cap_get_nothing_marketing(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    out, busy = web_member(), web_member()
    db.run(members.set_marketing, out, False, actor="test")
    plan("welcome", DAY + timedelta(hours=1), cfg)
    deliver(DAY + timedelta(hours=1), cfg=cfg)
    assert sends(member_id=out)[0].reason == "opted_out"
    # Two marketing messages in a week reach the cap: the third is skipped and recorded as such.
    for n in range(2):
        buy(busy, "10.00", DAY + timedelta(hours=2 + n))
    plan("after_purchase", DAY + timedelta(hours=3), cfg)
    deliver(DAY + timedelta(hours=3), cfg=cfg)
    mine = Counter((x.journey, x.status, x.reason) for x in sends(member_id=busy))
    assert mine == {("welcome", "sent", None): 1, ("after_purchase", "sent", None): 1,
                    ("after_purchase", "skipped", "frequency_cap"): 1}
    inbox = db.run(lambda s: s.execute(select(func.count()).where(InboxMessage.member_id == out)).scalar())
    assert inbox == 0


def test_quiet_hours_hold_until_nine(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    late = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)  # 22:30 in Shanghai
    mid = web_member(now=late)
    plan("welcome", late + timedelta(minutes=5), cfg)
    nine = datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc)  # 09:00 next morning
    assert sends()[0].due_at == nine
    assert deliver(nine - timedelta(minutes=1), cfg=cfg).sent == 0
    assert deliver(nine, cfg=cfg).sent == 1
    assert db.run(svc.inbox_take, mid, nine) == [svc.JOURNEYS["welcome"].steps["day0"].zh]
    assert db.run(svc.inbox_take, mid, nine) == []  # shown once


def test_each_member_gets_the_copy_in_their_language_and_previews_show_both(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    zh, en = web_member(), web_member(language="en")
    later = web_member()
    db.run(members.set_language, later, "en")  # learnt after joining (linked in an English chat)
    with pytest.raises(InvalidInput):
        join(language="fr")
    with pytest.raises(InvalidInput):
        db.run(members.set_language, zh, "jp")
    p = db.run(preview, "welcome", DAY + timedelta(hours=1), cfg, readonly=True)
    assert p.languages == {"zh": 1, "en": 2}
    step = svc.JOURNEYS["welcome"].steps["day0"]
    assert {(mid, lang) for mid, lang, _, _ in p.samples} == {(zh, "zh"), (en, "en"), (later, "en")}
    assert all((a, b) == (step.zh, step.en) for _, _, a, b in p.samples)  # both texts, whatever the reader
    plan("welcome", DAY + timedelta(hours=1), cfg)
    db.run(svc.create_broadcast, "SALE", {}, "周末特卖", "Weekend sale", DAY, actor="ops")
    db.run(svc.plan_all, DAY + timedelta(hours=1), replace(cfg, journeys=()))
    deliver(DAY + timedelta(hours=1), cfg=cfg)
    assert db.run(svc.inbox_take, zh, DAY) == [step.zh, "周末特卖"]
    assert db.run(svc.inbox_take, en, DAY) == [step.en, "Weekend sale"]
    assert db.run(svc.inbox_take, later, DAY) == [step.en, "Weekend sale"]


def test_control_group_is_never_messaged_and_stable(engine: Any) -> None:
    ids = web_members(400)
    plan("welcome", DAY + timedelta(hours=1))
    deliver(DAY + timedelta(hours=1))
    control = {x.member_id for x in sends(arm="control")}
    assert 20 <= len(control) <= 60  # about 10 % of 400
    assert all(x.status == "control" for x in sends(arm="control"))
    messaged = db.run(lambda s: set(s.execute(select(InboxMessage.member_id)).scalars()), readonly=True)
    assert messaged.isdisjoint(control) and len(messaged) == 400 - len(control)
    assert control == {m for m in ids if rules.in_control(m, "welcome", 10.0)}  # the same on every run


def test_a_crash_mid_batch_sends_nobody_twice_and_misses_nobody(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    ids = [web_member() for _ in range(6)]
    plan("welcome", DAY + timedelta(hours=1), cfg)
    now = DAY + timedelta(hours=1)
    # The dead scheduler claimed four and was inside the call of one when it died.
    claimed = db.run(svc.claim, "w1", now, 4)
    db.run(lambda s: s.execute(update(OutreachSend).where(OutreachSend.id == claimed[0])
                               .values(status="sending")))
    assert db.run(svc.recover, "w1", now, cfg) == (3, 1)
    deliver(now, cfg=cfg)
    by_member = Counter(x.member_id for x in sends() if x.status in ("sent", "in_doubt"))
    assert by_member == Counter(ids)  # each once: sent, or visibly in doubt
    assert len(sends(status="in_doubt")) == 1


def test_two_delivery_loops_claim_each_send_once(engine: Any) -> None:
    # Two loops in threads of one process, on both backends; two real scheduler processes on
    # PostgreSQL: tests/bot/test_outreach_scheduler.py.
    from concurrent.futures import ThreadPoolExecutor

    cfg = replace(CFG, holdout_percent=0.0)
    ids = web_members(300)
    plan("welcome", DAY + timedelta(hours=1), cfg)

    def work(name: str) -> int:
        n = 0
        while True:
            t = delivery.deliver_due(name, WEB, now=DAY + timedelta(hours=1), limit=20, cfg=cfg)
            n += t.sent
            if not t.sent and not t.skipped:
                return n

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(work, ["a", "b"]))
    assert sum(counts) == 300
    rows = db.run(lambda s: list(s.execute(select(InboxMessage.member_id)).scalars()), readonly=True)
    assert sorted(rows) == sorted(ids)


class _Subscribing:
    """A channel that needs a subscription credit per message, like WeChat outside the window."""

    channel = "webchat"

    def __init__(self, on_send: Any = None) -> None:
        self.sent: list[int] = []
        self._on_send = on_send

    def route(self, msg: delivery.Outgoing) -> delivery.Route:
        if msg.credits.get(CFG.subscribe_template):
            return delivery.Route("subscribe", credit_template=CFG.subscribe_template)
        return delivery.Route(None, "no_credit")

    def send(self, msg: delivery.Outgoing, route: delivery.Route) -> delivery.Result:
        self.sent.append(msg.member_id)
        if self._on_send:
            self._on_send()
        return delivery.Result(True)


def test_a_batch_decided_but_not_sent_goes_back_with_its_credits(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    ids = [web_member() for _ in range(4)]
    for mid in ids:
        db.run(svc.grant_credit, mid, cfg.subscribe_template)
    now = DAY + timedelta(hours=1)
    plan("welcome", now, cfg)
    transport = _Subscribing()
    claimed = db.run(svc.claim, "w1", now, 10)
    batch = db.run(delivery.prepare, claimed, {"webchat": transport}, now, cfg)
    assert len(batch.ready) == 4 and {x.status for x in sends()} == {"ready"}
    assert sum(db.run(svc.open_credits, mid, cfg.subscribe_template) for mid in ids) == 0
    # The scheduler dies before its first API call; restarted, it finds the batch again.
    assert db.run(svc.recover, "w1", now, cfg) == (4, 0)
    assert {x.status for x in sends()} == {"due"}
    assert [db.run(svc.open_credits, mid, cfg.subscribe_template) for mid in ids] == [1, 1, 1, 1]
    deliver(now, {"webchat": transport}, cfg)
    assert sorted(transport.sent) == sorted(ids)  # each once
    assert {x.status for x in sends()} == {"sent"}
    assert sum(db.run(svc.open_credits, mid, cfg.subscribe_template) for mid in ids) == 0


@pytest.mark.parametrize("senders", [1, 2])
def test_quiet_hours_that_begin_during_a_batch_hold_the_rest(engine: Any, monkeypatch: Any, senders: int) -> None:
    # The calls already started (one per sender thread) go; the rest waits for the morning.
    cfg = replace(CFG, holdout_percent=0.0, senders=senders)
    ids = [web_member() for _ in range(3)]
    for mid in ids:
        db.run(svc.grant_credit, mid, cfg.subscribe_template)
    clock = [datetime(2026, 3, 2, 12, 59, 59, tzinfo=timezone.utc)]  # 20:59:59 in Shanghai
    plan("welcome", clock[0], cfg)

    def tick() -> None:  # the first call takes us past 21:00
        clock[0] += timedelta(seconds=2)

    monkeypatch.setattr(delivery, "now_or", lambda now=None: now or clock[0])
    monkeypatch.setattr(svc, "now_or", lambda now=None: now or clock[0])
    transport = _Subscribing(tick)
    t = delivery.deliver_due("w1", {"webchat": transport}, cfg=cfg)
    assert (t.sent, t.held) == (senders, 3 - senders) and len(transport.sent) == senders
    nine = datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc)
    held = [x for x in sends() if x.status == "due"]
    assert len(held) == 3 - senders and {x.due_at for x in held} == {nine}
    assert sum(db.run(svc.open_credits, mid, cfg.subscribe_template) for mid in ids) == 3 - senders  # given back
    clock[0] = nine
    deliver(nine, {"webchat": transport}, cfg)
    assert sorted(transport.sent) == sorted(ids)


def test_sms_only_with_sms_consent_through_the_fake_gateway(engine: Any, fake_sms: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    yes, no = join(now=DAY), join(now=DAY)
    db.run(lambda s: s.execute(update(Member).where(Member.id == yes).values(sms_opt_in=True)))
    gateway = AliyunSms(SmsSettings(fake_url=fake_sms.url))
    transports = {"sms": delivery.SmsTransport(gateway, "SMS_OUTREACH")}
    plan("welcome", DAY + timedelta(hours=1), cfg)
    deliver(DAY + timedelta(hours=1), transports, cfg)
    phone = db.run(lambda s: s.get(Member, yes).phone)
    got = fake_sms.messages(phone)
    assert len(got) == 1 and got[0]["template_code"] == "SMS_OUTREACH" and "欢迎" in got[0]["params"]["text"]
    assert sends(member_id=no)[0].reason == "no_channel"


class _Refusing:
    channel = "webchat"

    def route(self, msg: delivery.Outgoing) -> delivery.Route:
        return delivery.Route("cs")

    def send(self, msg: delivery.Outgoing, route: delivery.Route) -> delivery.Result:
        return delivery.Result(False, "45047")


def test_api_failures_are_recorded_with_the_errcode(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    web_member()
    plan("welcome", DAY + timedelta(hours=1), cfg)
    deliver(DAY + timedelta(hours=1), {"webchat": _Refusing()}, cfg)
    assert [(x.status, x.errcode) for x in sends()] == [("failed", "45047")]


class _Overlapping(_Subscribing):
    """Each call looks at the ledger; the first ``together`` calls wait for each other (so they overlap)."""

    def __init__(self, together: int) -> None:
        super().__init__()
        self._meet = threading.Barrier(together, timeout=30)
        self._lock = threading.Lock()
        self.sending: list[int] = []  # rows marked sending, seen by each call

    def send(self, msg: delivery.Outgoing, route: delivery.Route) -> delivery.Result:
        with self._lock:
            first = len(self.sent) < self._meet.parties
            self.sent.append(msg.member_id)
        self.sending.append(len(sends(status="sending")))
        if first:
            self._meet.wait()  # broken (an error) unless that many calls are in flight at once
        return delivery.Result(True)


def test_sender_threads_send_each_once_with_no_more_in_doubt_than_threads(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0, senders=3)
    ids = [web_member() for _ in range(12)]
    for mid in ids:
        db.run(svc.grant_credit, mid, cfg.subscribe_template)
    plan("welcome", DAY + timedelta(hours=1), cfg)
    transport = _Overlapping(together=3)
    t = deliver(DAY + timedelta(hours=1), {"webchat": transport}, cfg)
    assert t.sent == 12 and sorted(transport.sent) == sorted(ids)  # each once
    assert max(transport.sending) <= 3  # a scheduler dying now would leave at most 3 in doubt
    assert {x.status for x in sends()} == {"sent"}
    assert sum(db.run(svc.open_credits, mid, cfg.subscribe_template) for mid in ids) == 0


def test_a_send_recovered_by_another_scheduler_meanwhile_is_not_sent(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    for mid in [web_member() for _ in range(3)]:
        db.run(svc.grant_credit, mid, cfg.subscribe_template)
    now = DAY + timedelta(hours=1)
    plan("welcome", now, cfg)
    claimed = db.run(svc.claim, "w1", now, 10)
    batch = db.run(delivery.prepare, claimed, {"webchat": _Subscribing()}, now, cfg)
    ready = [m.send_id for m, _ in batch.ready]
    # w1 stalls past its lease: another scheduler recovers its batch and starts sending one of them.
    db.run(svc.recover, None, now + timedelta(seconds=cfg.lease_seconds + 1), cfg)
    assert db.run(svc.claim, "w2", now, 1) == ready[:1]
    db.run(lambda s: s.execute(update(OutreachSend).where(OutreachSend.id == ready[0]).values(status="sending")))
    assert db.run(delivery.advance, "w1", [], ready, now) == []  # none of them is w1's to send now
    assert [x.status for x in sends()] == ["sending", "due", "due"]


SEEDS = 10  # seeds 0..9, every one of them: none picked


def least_covered(runs: int, coverage: float = 0.95, risk: float = 1e-3) -> int:
    """The fewest of ``runs`` independent ``coverage`` intervals that contain the truth, except with
    probability below ``risk``: the binomial tail, so the test fails only when the intervals are wrong."""
    def at_most(k: int) -> float:  # P(at most k intervals contain the truth)
        return sum(math.comb(runs, i) * coverage**i * (1 - coverage) ** (runs - i) for i in range(k + 1))

    return next(k for k in range(runs + 1) if at_most(k) > risk)


@pytest.mark.parametrize(("effect", "audience"), [(0.25, 480), (0.0, 240)])
def test_measured_uplift_recovers_the_known_effect(sqlite_engine: Any, effect: float, audience: int) -> None:
    """One broadcast per seed to the same simulated shoppers, two weeks apart (attribution windows never
    overlap), each with its own holdout draw and simulated responses; the report's 95 % intervals must
    contain the true effect as often as 95 % intervals do."""
    cfg = replace(CFG, holdout_percent=50.0)
    web_members(audience)
    covered = revenue_covered = found = 0
    for seed in range(SEEDS):
        at = DAY + timedelta(days=14 * seed)
        db.run(svc.create_broadcast, f"SIM{seed}", {}, "新品到店", "New in store", at, actor="test")
        db.run(svc.plan_broadcast, f"SIM{seed}", at, cfg)
        deliver(at, cfg=cfg)
        respond(f"broadcast:SIM{seed}", base=0.2, effect=effect, seed=seed)
        r = db.run(report.journey_report, f"broadcast:SIM{seed}", cfg, readonly=True)
        assert r.control.members > audience // 4 and r.treatment.reached == r.treatment.members
        covered += r.conversion_uplift.low <= effect <= r.conversion_uplift.high
        revenue_covered += r.revenue_uplift_fen.low <= effect * 10000 <= r.revenue_uplift_fen.high
        found += r.conversion_uplift.low > 0
    need = least_covered(SEEDS)
    assert need == 6  # correct 95 % intervals miss 5 or more of 10 runs with probability 6e-5
    assert covered >= need and revenue_covered >= need, (covered, revenue_covered)
    if effect:
        # 480 shoppers: the interval is about ±0.08 wide, so a 25-point effect is found in every run
        # (a miss has a probability near 1e-5 per run).
        assert found == SEEDS
    else:
        assert found <= SEEDS - need  # no effect: an interval above 0 is one of the rare misses


def test_paused_journey_plans_nothing_until_resumed(engine: Any) -> None:
    web_member()
    db.run(svc.set_paused, "welcome", True, actor="test")
    assert plan("welcome", DAY + timedelta(hours=1)).new == 0
    db.run(svc.set_paused, "welcome", False, actor="test")
    assert plan("welcome", DAY + timedelta(hours=1)).new == 1


def test_holding_rules_are_pure() -> None:
    assert rules.quiet(datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc), 21, 9)  # 21:00 local
    assert not rules.quiet(datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc), 21, 9)  # 09:00 local
    early = datetime(2026, 3, 2, 20, 0, tzinfo=timezone.utc)  # 04:00 local on 3 March
    assert rules.hold(early, 21, 9) == datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc)
    assert date(2026, 3, 3)


def cli_run(capsys: Any, *argv: str) -> tuple[int, str]:
    from loyalty.apps import cli

    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_preview_run_pause_report(sqlite_engine: Any, capsys: Any) -> None:
    ids = web_members(50)
    db.run(members.set_marketing, ids[0], False, actor="test")
    at = "2026-03-02T10:30"
    code, out = cli_run(capsys, "journey", "preview", "welcome", "--now", at)
    assert code == 0 and "audience 50" in out and "skipped by opted_out: 1" in out and "欢迎入会" in out
    would = out.split("would send ", 1)[1].split()[0]
    assert f"in zh: {would}\n" in out and "(reads zh)" in out and "Welcome!" in out  # everyone reads zh
    assert sends() == []  # a preview writes nothing
    code, out = cli_run(capsys, "journey", "run", "welcome", "--now", at)
    assert code == 0 and "50 new sends" in out
    code, out = cli_run(capsys, "journey", "preview", "welcome", "--now", at)
    assert "planned before 50" in out and "would send 0" in out
    assert cli_run(capsys, "journey", "pause", "welcome", "--actor", "ops")[0] == 0
    assert db.run(svc.paused, "welcome")
    code, out = cli_run(capsys, "journey", "report", "welcome")
    assert code == 0 and "conversion uplift" in out
    code, out = cli_run(capsys, "broadcast", "create", "SPRING", "--audience", "[1]", "--zh", "春", "--en", "Spring",
                        "--at", at, "--actor", "ops")
    assert code == 2 and "JSON object" in out


def test_broadcast_to_an_audience_at_its_time(engine: Any) -> None:
    gold = web_member()
    web_member()
    db.run(lambda s: s.execute(update(Member).where(Member.id == gold).values(tier="gold")))
    send_at = DAY + timedelta(hours=2)
    db.run(svc.create_broadcast, "GOLD-DAY", {"tier": "gold"}, "金卡日", "Gold day", send_at, actor="ops")
    db.run(svc.plan_all, DAY + timedelta(hours=1), replace(CFG, journeys=()))
    assert sends() == []  # not yet
    db.run(svc.plan_all, send_at, replace(CFG, journeys=(), holdout_percent=0.0))
    deliver(send_at)
    assert [(x.member_id, x.status) for x in sends()] == [(gold, "sent")]
    assert db.run(svc.inbox_take, gold, send_at) == ["金卡日"]


def test_web_chat_inbox_is_shown_once_at_the_next_visit_unless_an_open_page_had_it(engine: Any) -> None:
    cfg = replace(CFG, holdout_percent=0.0)
    a, b = web_member(), web_member()
    plan("welcome", DAY + timedelta(hours=1), cfg)
    deliver(DAY + timedelta(hours=1), cfg=cfg)
    pushed = db.run(lambda s: s.execute(select(OutreachSend.id).where(OutreachSend.member_id == b)).scalar())
    db.run(svc.inbox_seen, pushed)  # b's page was open and showed it
    assert db.run(svc.inbox_for_visitor, f"v{a}") == [svc.JOURNEYS["welcome"].steps["day0"].zh]
    assert db.run(svc.inbox_for_visitor, f"v{a}") == []
    assert db.run(svc.inbox_for_visitor, f"v{b}") == []
    assert db.run(svc.inbox_for_visitor, "stranger") == []


def test_tier_keep_reminder_30_days_before_a_review_that_would_move_down(engine: Any) -> None:
    gold, safe = web_member(), web_member()
    buy(gold, "1000.00", DAY)
    buy(safe, "7000.00", DAY)
    db.run(lambda s: s.execute(update(Member).where(Member.id.in_([gold, safe])).values(tier="gold")))
    review_minus_31 = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)  # the review is on 1 January
    plan("tier", review_minus_31)
    assert sends(step="keep") == []
    plan("tier", review_minus_31 + timedelta(days=1))
    [keep] = sends(step="keep")
    assert (keep.member_id, keep.facts["yuan"], keep.kind) == (gold, 5000, "marketing")
    text = db.run(lambda s: delivery.render(s, s.get(OutreachSend, keep.id), "zh"))
    assert text == "再消费¥5000，2027-01-01前即可保级金卡会员。"


def test_wakeup_grants_its_coupon_once_with_the_message(engine: Any) -> None:
    from loyalty.coupons.models import Coupon
    from loyalty.members.models import MemberSegment
    from tests.loyalty.corekit import campaign

    campaign("COMEBACK", audience="goodwill", kind="threshold", threshold_fen=10000, discount_fen=2000,
             name_zh="回归券", name_en="welcome-back coupon", valid_days=14)
    mid = web_member()
    buy(mid, "30.00", DAY - timedelta(days=200))
    db.run(lambda s: s.add(MemberSegment(member_id=mid, recency=1, frequency=1, monetary=1, segment="hibernating",
                                         lifecycle="dormant", tags=[], as_of=DAY)))
    cfg = replace(CFG, holdout_percent=0.0, wakeup_campaign="COMEBACK", journeys=("wakeup",))
    for _ in range(2):
        db.run(svc.plan_all, DAY, cfg)
        deliver(DAY, cfg=cfg)
    assert db.run(lambda s: s.execute(select(func.count()).select_from(Coupon)).scalar()) == 1
    [text] = db.run(svc.inbox_take, mid, DAY)
    assert text.startswith("好久不见！送您一张「回归券」。")


def test_migration_0008_gives_existing_members_chinese(engine: Any) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from loyalty import migrate

    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0007")
    assert "language" not in {c["name"] for c in inspect(engine).get_columns("members")}
    with engine.begin() as conn:  # a member who joined before 0008
        conn.execute(text("INSERT INTO members (phone, referral_code, tier, points_balance, marketing_opt_in, "
                          "sms_opt_in, status, created_at) VALUES ('13900000008', 'OLD008', 'normal', 0, "
                          "true, false, 'active', '2026-03-02 02:00:00')"))
    migrate.upgrade(engine, "0008")
    assert migrate.current(engine) == "0008"
    migrate.upgrade(engine)  # and on to the newest, which the model classes describe
    old = db.run(lambda s: s.execute(select(Member).where(Member.phone == "13900000008")).scalar_one())
    assert old.language == "zh" and svc.language_of(old) == "zh"


def test_migration_0010_keeps_earlier_credits_open(engine: Any) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    mid = join(now=DAY)
    db.run(svc.grant_credit, mid, "SUB-MARKETING", DAY)
    _downgrade(engine, "0009")
    assert "revoked_at" not in {c["name"] for c in inspect(engine).get_columns("subscription_credits")}
    migrate.upgrade(engine, "0010")
    assert migrate.current(engine) == "0010"
    migrate.upgrade(engine)
    assert db.run(svc.open_credits, mid, "SUB-MARKETING") == 1


def test_sender_threads_come_from_the_environment() -> None:
    from loyalty.config import SettingsError
    from loyalty.outreach.settings import from_env

    assert from_env({}).senders == 8
    assert from_env({"OUTREACH_SENDERS": "3"}).senders == 3
    with pytest.raises(SettingsError):
        from_env({"OUTREACH_SENDERS": "0"})
