"""The outreach scheduler rebuilds the staff dashboard's tables on its first round, and not when told not to."""

from __future__ import annotations

import pytest
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
