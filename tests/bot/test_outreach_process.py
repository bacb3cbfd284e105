"""The outreach scheduler: it rebuilds the staff dashboard's tables, and its schedulers share one rate limit."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot import outreach
from loyalty import db
from loyalty.reports.models import Rollup, SalesCell
from tests.loyalty.corekit import T0, buy, join


def _rebuilt() -> tuple[int, int]:
    def read(s: Session) -> tuple[int, int]:
        rows = s.execute(select(Rollup.rows)).scalars().all()
        cells = s.execute(select(SalesCell.orders)).scalars().all()
        return len(rows), sum(cells)

    return db.run(read, readonly=True)


def test_the_scheduler_rebuilds_the_dashboard_tables(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    buy(join(T0, channel="wechat", external_id="o-sched"), "50.00", T0)
    monkeypatch.setenv("REPORTS_REFRESH_SECONDS", "0")
    outreach.run("w-reports", once=True)
    assert _rebuilt() == (0, 0)
    monkeypatch.setenv("REPORTS_REFRESH_SECONDS", "600")
    outreach.run("w-reports", once=True)
    assert _rebuilt() == (1, 2)  # the order in the "all" cells and in its channel's


def test_a_failed_rebuild_leaves_the_scheduler_running(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(outreach.rollup, "refresh", broken)
    outreach.run("w-reports", once=True)  # no exception: the round went on
    assert "dashboard tables not rebuilt" in caplog.text


def test_two_schedulers_share_one_rate_limit(redis_url: str) -> None:
    """Two processes' limits on one Redis: together never more than the rate in any second."""
    r = redis.Redis.from_url(redis_url)
    limits = [outreach.SharedRateLimit(r, "wechat", 5.0, prefix="t-share:") for _ in range(2)]
    times: list[float] = []
    lock = threading.Lock()

    def send(limit: outreach.SharedRateLimit) -> None:
        for _ in range(8):
            limit.wait()
            with lock:
                times.append(time.time())

    threads = [threading.Thread(target=send, args=(lim,)) for lim in limits]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    per_second = Counter(int(t) for t in times)
    assert len(times) == 16 and max(per_second.values()) <= 5, per_second


def test_without_redis_the_processs_own_limit_applies(caplog: pytest.LogCaptureFixture) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    limit = outreach.SharedRateLimit(dead, "wechat", 1000.0)
    limit.wait()  # no exception: the local bucket let it through
    assert "shared rate limit unavailable" in caplog.text
