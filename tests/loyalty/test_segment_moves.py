"""Segment moves: the job appends one row per change (and none twice), erasure takes them, the report counts them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.members.models import MemberSegment, SegmentMove
from loyalty.membership import service as membership
from loyalty.reports import segments as segment_report
from loyalty.reports import service as reports
from loyalty.reports.service import Scope
from loyalty.segments.job import recompute_all
from tests.loyalty.corekit import T0, buy, days, join
from tests.loyalty.test_reports import DAY, _fixture


def moves() -> list[tuple[int, str, str | None, str, datetime]]:
    with db.session(readonly=True) as s:
        return [(m.member_id, m.dimension, m.from_value, m.to_value, m.run_at) for m in s.execute(
            select(SegmentMove).order_by(SegmentMove.run_at, SegmentMove.member_id, SegmentMove.dimension)).scalars()]


def test_the_job_records_first_assignments_changes_and_nothing_twice(engine: Engine) -> None:
    idle, buyer = join(T0), join(T0)
    buy(buyer, "20.00", T0 + DAY)
    first = db.run(recompute_all, now=T0 + 2 * DAY)
    # Both joined two days before: new stage, new segment; first assignments come from nowhere.
    r1 = T0 + 2 * DAY
    assert first.moves == 4
    assert moves() == [(idle, "lifecycle", None, "new", r1), (idle, "rfm", None, "new", r1),
                       (buyer, "lifecycle", None, "new", r1), (buyer, "rfm", None, "new", r1)]
    # The same run again, and a later run that changes nothing: no row.
    assert db.run(recompute_all, now=r1).moves == 0
    assert db.run(recompute_all, now=T0 + 3 * DAY).moves == 0
    assert len(moves()) == 4
    # Sixty days on: both past the new-member window. The idle one never bought (active by joining date, no
    # purchase yet); the only buyer scores 3/3/3 (need attention), last bought 59 days ago (active).
    r2 = T0 + days(60)
    assert db.run(recompute_all, now=r2).moves == 4
    assert moves()[4:] == [(idle, "lifecycle", "new", "active", r2), (idle, "rfm", "new", "prospect", r2),
                           (buyer, "lifecycle", "new", "active", r2), (buyer, "rfm", "new", "need_attention", r2)]


def test_a_retried_run_adds_no_second_move(engine: Engine) -> None:
    m = join(T0)
    db.run(recompute_all, now=T0 + DAY)
    db.run(recompute_all, now=T0 + days(60))
    before = moves()
    assert [r[2:4] for r in before[2:]] == [("new", "active"), ("new", "prospect")]

    # As if the run's state were lost after its moves were written (a second worker doing the same run):
    # the state goes back, the same run is done again.
    def back(s: Any) -> None:
        s.execute(update(MemberSegment).where(MemberSegment.member_id == m)
                  .values(lifecycle="new", segment="new", as_of=T0 + DAY))

    db.run(back)
    assert db.run(recompute_all, now=T0 + days(60)).moves == 0
    assert moves() == before
    with db.session(readonly=True) as s:
        row = s.get(MemberSegment, m)
        assert row is not None and (row.lifecycle, row.segment) == ("active", "prospect")


def test_closing_an_account_erases_its_moves_only(engine: Engine) -> None:
    leaving, staying = join(T0), join(T0)
    db.run(recompute_all, now=T0 + DAY)
    db.run(membership.close_account, leaving, actor="test", now=T0 + 2 * DAY)
    assert {r[0] for r in moves()} == {staying}
    # The next run drops the closed member's current segment and records nothing for them.
    assert db.run(recompute_all, now=T0 + 3 * DAY).moves == 0
    assert {r[0] for r in moves()} == {staying}


def _add_moves(f: dict[str, int]) -> None:
    """Three runs over the members of tests.loyalty.test_reports._fixture (m1, m2 of store A, m3 of B)."""
    r1, r2, r3 = T0 + DAY, T0 + 5 * DAY, T0 + 9 * DAY
    plan = [
        (f["m1"], "lifecycle", None, "new", r1), (f["m2"], "lifecycle", None, "new", r1),
        (f["m3"], "lifecycle", None, "new", r1), (f["m1"], "rfm", None, "new", r1),
        (f["m2"], "rfm", None, "new", r1), (f["m3"], "rfm", None, "new", r1),
        (f["m1"], "lifecycle", "new", "active", r2), (f["m1"], "rfm", "new", "potential", r2),
        (f["m3"], "lifecycle", "new", "active", r2),
        (f["m1"], "lifecycle", "active", "dormant", r3), (f["m2"], "rfm", "new", "prospect", r3),
    ]
    db.run(lambda s: s.add_all([SegmentMove(member_id=m, dimension=d, from_value=a, to_value=b, run_at=at)
                                for m, d, a, b, at in plan]))


def _cells(fig: dict[str, Any], dim: str) -> dict[tuple[str | None, str], int]:
    return {(c["from"], c["to"]): c["members"] for c in fig[dim]["matrix"]}


def _net(fig: dict[str, Any], dim: str) -> dict[str, tuple[int, int, int, int]]:
    return {r["segment"]: (r["first"], r["moved_in"], r["moved_out"], r["net"]) for r in fig[dim]["segments"]
            if r["first"] or r["moved_in"] or r["moved_out"]}


def test_the_matrix_by_hand(engine: Engine) -> None:
    f = _fixture()
    _add_moves(f)

    def fig(**kw: Any) -> dict[str, Any]:
        sc = Scope(kw.pop("start", T0), T0 + 10 * DAY, **kw)
        return db.run(segment_report.moves, sc, readonly=True)

    every = fig()
    assert _cells(every, "lifecycle") == {(None, "new"): 3, ("new", "active"): 2, ("active", "dormant"): 1}
    assert _cells(every, "rfm") == {(None, "new"): 3, ("new", "potential"): 1, ("new", "prospect"): 1}
    # first, moved in, moved out, net
    assert _net(every, "lifecycle") == {"new": (3, 0, 2, 1), "active": (0, 2, 1, 1), "dormant": (0, 1, 0, 1)}
    assert _net(every, "rfm") == {"new": (3, 0, 2, 1), "potential": (0, 1, 0, 1), "prospect": (0, 1, 0, 1)}
    # Every known segment has a row, in reading order, with its names.
    assert [r["segment"] for r in every["lifecycle"]["segments"]] == ["new", "active", "dormant", "churned"]
    assert every["rfm"]["segments"][0]["name_en"] == "Champions"
    # Store A (m1, m2): m3's moves are not there.
    only_a = fig(store_id=f["a"])
    assert _cells(only_a, "lifecycle") == {(None, "new"): 2, ("new", "active"): 1, ("active", "dormant"): 1}
    assert _cells(only_a, "rfm") == {(None, "new"): 2, ("new", "potential"): 1, ("new", "prospect"): 1}
    # Joined by WeChat: m1 and m3.
    wechat = fig(channel="wechat")
    assert _cells(wechat, "lifecycle") == {(None, "new"): 2, ("new", "active"): 2, ("active", "dormant"): 1}
    assert _cells(wechat, "rfm") == {(None, "new"): 2, ("new", "potential"): 1}
    # From day 2: the first run is outside.
    later = fig(start=T0 + 2 * DAY)
    assert _cells(later, "lifecycle") == {("new", "active"): 2, ("active", "dormant"): 1}
    assert _net(later, "rfm") == {"new": (0, 0, 2, -2), "potential": (0, 1, 0, 1), "prospect": (0, 1, 0, 1)}
    # The dashboard carries the same figure.
    dash = db.run(reports.dashboard, Scope(T0, T0 + 10 * DAY), T0 + 10 * DAY, readonly=True)
    assert dash["segment_moves"] == every


def test_all_the_moves_add_up_to_todays_segment_sizes(engine: Engine) -> None:
    a, c = join(T0), join(T0 - days(100))
    join(T0)  # never buys
    buy(a, "50.00", T0 + DAY)
    buy(c, "10.00", T0 - days(95))
    for at in (T0 + 2 * DAY, T0 + days(40), T0 + days(70), T0 + days(200)):
        db.run(recompute_all, now=at)
    with db.session(readonly=True) as s:
        rows = s.execute(select(MemberSegment.lifecycle, MemberSegment.segment)).all()
    fig = db.run(segment_report.moves, Scope(T0 - days(1), T0 + days(201)), readonly=True)
    for dim, pick in (("lifecycle", 0), ("rfm", 1)):
        sizes = Counter(r[pick] for r in rows)
        assert {r["segment"]: r["net"] for r in fig[dim]["segments"] if r["net"]} == dict(sizes)


def test_migration_0012_goes_down_and_up_and_starts_from_the_stored_segments(engine: Engine) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    m = join(T0)
    db.run(recompute_all, now=T0 + DAY)
    _downgrade(engine, "0009")
    assert "segment_moves" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    # Members scored before the table existed: their current stage and segment as first assignments.
    assert moves() == [(m, "lifecycle", None, "new", T0 + DAY), (m, "rfm", None, "new", T0 + DAY)]
    assert db.run(recompute_all, now=T0 + 2 * DAY).moves == 0
