"""Scheduler processes: killed mid-batch and restarted, or two at once on PostgreSQL: nobody messaged
twice, nobody missed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from loyalty import db
from loyalty.members import service as members
from loyalty.members.models import Member
from loyalty.outreach import service as svc
from loyalty.outreach.models import OutreachSend, SubscriptionCredit
from loyalty.outreach.settings import OutreachSettings
from loyalty.reports.models import Rollup
from tests.bot.conftest import APP_ID, APP_SECRET, FakeApi
from tests.loyalty.corekit import many_members

DAY = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
N = 120


def scheduler(url: str, sms_url: str, *extra: str, senders: int = 4) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOYALTY_DATABASE_URL": url, "SMS_PROVIDER": "fake", "SMS_FAKE_URL": sms_url,
           "OUTREACH_RATES": "sms=1000", "OUTREACH_QUIET_START": "0", "OUTREACH_QUIET_END": "0",
           "OUTREACH_SENDERS": str(senders), "WECHAT_APP_ID": "", "WEBCHAT_REDIS_URL": ""}
    return subprocess.Popen([sys.executable, "-m", "bot.outreach", "--worker", "w1", "--batch", "10", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("senders", [1, 4])
def test_killed_mid_batch_then_restarted(engine: Any, fake_sms: Any, senders: int) -> None:
    ids = many_members(N, DAY)
    db.run(lambda s: s.execute(update(Member).values(created_at=DAY, sms_opt_in=True)))
    db.run(svc.plan_journey, "welcome", DAY + timedelta(hours=1), OutreachSettings(holdout_percent=0.0))
    url = engine.url.render_as_string(hide_password=False)
    proc = scheduler(url, fake_sms.url, senders=senders)
    deadline = time.monotonic() + 60
    while len(fake_sms.messages()) < N // 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-batch: no chance to tidy up
    proc.wait(10)
    assert N // 3 <= len(fake_sms.messages()) < N
    again = scheduler(url, fake_sms.url, senders=senders)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        left = db.run(lambda s: s.execute(select(OutreachSend.id).where(
            OutreachSend.status.in_(svc.PLANNED))).first(), readonly=True)
        if left is None:
            break
        time.sleep(0.2)
    again.terminate()
    again.wait(10)
    phones = dict(db.run(lambda s: list(s.execute(select(Member.id, Member.phone))), readonly=True))
    received = Counter(m["phone"] for m in fake_sms.messages())
    assert max(received.values()) == 1  # nobody twice
    rows = db.run(lambda s: list(s.execute(select(OutreachSend.member_id, OutreachSend.status))), readonly=True)
    status = dict(rows)
    # Everybody got the message, except the sends caught inside the API call when the process died
    # (at most one per sender thread): recorded as in doubt, never repeated.
    doubt = [m for m in ids if status[m] == "in_doubt"]
    assert len(doubt) <= senders
    assert all(status[m] == "sent" and received[phones[m]] == 1 for m in ids if m not in doubt)
    # Beside the sends, its thread rebuilt the staff dashboard's tables (loyalty/reports/rollup.py).
    assert db.run(lambda s: s.execute(select(Rollup.as_of)).scalar(), readonly=True) is not None


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_two_scheduler_processes_on_postgresql_message_each_member_once(
        engine: Any, fake_api: FakeApi, tmp_path: Path) -> None:
    """Two ``python -m bot.outreach`` processes, four sender threads each, deliver one journey to the fake
    WeChat API together."""
    fake_api.reset()
    n = 240
    now = datetime.now(timezone.utc)  # the processes go by the real clock
    ids = many_members(n, now - timedelta(hours=1))
    openids = {mid: f"o-two-{mid}" for mid in ids}
    for mid, openid in openids.items():
        db.run(members.bind_identity, mid, "wechat", openid)
        db.run(svc.grant_credit, mid, "SUB-MARKETING")  # outside the window: a subscription message each
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "LOYALTY_DATABASE_URL": url, "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": APP_SECRET,
           "WECHAT_TOKEN": "t", "WECHAT_API_BASE_URL": fake_api.api_base_url, "WECHAT_REDIS_URL": "",
           "WEBCHAT_REDIS_URL": "", "OUTREACH_RATES": "wechat=1000", "OUTREACH_SENDERS": "4",
           "OUTREACH_QUIET_START": "0", "OUTREACH_QUIET_END": "0",
           "OUTREACH_JOURNEYS": "birthday"}  # nobody has a birthday: they plan nothing
    logs = [tmp_path / f"{w}.log" for w in ("a", "b")]
    procs = [subprocess.Popen([sys.executable, "-m", "bot.outreach", "--worker", w, "--batch", "5", "--tick", "0.1"],
                              env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
             for w, log in zip(("a", "b"), logs, strict=True)]
    try:
        deadline = time.monotonic() + 60
        while not all("scheduler" in log.read_text() for log in logs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(p.poll() is None for p in procs), [log.read_text()[-2000:] for log in logs]
        fake_api.set_delay(0.01)  # each API call takes a moment, as WeChat's do: the two overlap
        # Both are polling now: what is planned is due for both at once.
        db.run(svc.plan_journey, "welcome", datetime.now(timezone.utc),
               OutreachSettings(holdout_percent=0.0, quiet_start=0, quiet_end=0))
        assert db.run(lambda s: s.execute(select(func.count()).where(OutreachSend.status == "due")).scalar()) == n
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = db.run(lambda s: s.execute(select(OutreachSend.id).where(
                OutreachSend.status.in_(svc.PLANNED))).first(), readonly=True)
            if left is None:
                break
            time.sleep(0.2)
    finally:
        fake_api.set_delay(0)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    received = Counter(x["touser"] for x in requests.get(fake_api.base + "/_fake/notices", timeout=5).json()["notices"])
    assert received == Counter(openids.values())  # every member, each exactly once
    rows = db.run(lambda s: list(s.execute(select(OutreachSend.member_id, OutreachSend.status,
                                                  OutreachSend.claimed_by))), readonly=True)
    assert sorted(m for m, st, _ in rows if st == "sent") == sorted(ids)
    by_worker = Counter(w for _, _, w in rows)
    assert set(by_worker) == {"a", "b"}, by_worker  # both processes did part of the work
    assert db.run(lambda s: s.execute(select(func.count()).select_from(SubscriptionCredit)
                                      .where(SubscriptionCredit.spent_at.is_(None))).scalar()) == 0


def test_a_planning_round_freezes_the_closed_windows_outcomes(engine: Any, fake_sms: Any) -> None:
    from loyalty.outreach import outcomes
    from loyalty.outreach.models import SendOutcome
    from tests.loyalty.test_reports_outreach import _welcome_fixture

    _welcome_fixture()  # five members in the welcome journey's arms, sent in March: every window closed
    proc = scheduler(engine.url.render_as_string(hide_password=False), fake_sms.url, "--once")
    assert proc.wait(60) == 0
    assert db.run(outcomes.frozen_until, 7, readonly=True) is not None
    assert db.run(lambda s: s.execute(select(func.count()).select_from(SendOutcome)
                                      .where(SendOutcome.journey == "welcome")).scalar(), readonly=True) == 5
