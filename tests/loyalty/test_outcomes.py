"""Frozen journey outcomes: the report sums them with the open windows and gives the live figures, by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from loyalty import db
from loyalty.coupons import service as coupons
from loyalty.membership import service as membership
from loyalty.orders import service as orders
from loyalty.outreach import outcomes
from loyalty.outreach.models import OutreachSend, SendOutcome
from loyalty.reports import outreach as journeys
from tests.loyalty.corekit import T0, buy, campaign, in_parallel, join
from tests.loyalty.test_reports import DAY, _stores

NOW = T0 + 10 * DAY  # the 7-day windows from T0 to T0 + 3 days have closed; those from T0 + 4 days are open


def _send(member: int, status: str, at: datetime, *, step: str = "day0", reason: str | None = None) -> None:
    db.run(lambda s: s.add(OutreachSend(
        idem_key=f"{member}:welcome:{step}:join", member_id=member, journey="welcome", step=step, occasion="join",
        kind="marketing", arm="control" if status == "control" else "treatment", status=status, reason=reason,
        facts={}, planned_at=at, due_at=at, done_at=None if status == "due" else at)))


def _redeem(member: int, key: str, at: datetime) -> None:
    c = db.run(coupons.claim, member, "JRN10", key=key, now=at - DAY)
    db.run(coupons.redeem, c.coupon.code, order_amount_fen=10000, order_ref=f"ORD-{key}", store_code="RA1", now=at)


def _fixture() -> dict[str, int]:
    _stores()
    campaign("JRN10", discount_fen=1000, per_member_limit=5)
    m = {k: join(T0 - 20 * DAY, store_code="RA1") for k in "abcdefghi"}
    # Treatment. a: sent at T0 (closed), ¥100 on day 1 (in), ¥40 on day 8 (out), a ¥10 coupon on day 2 (in).
    _send(m["a"], "sent", T0)
    buy(m["a"], "100.00", T0 + DAY)
    buy(m["a"], "40.00", T0 + 8 * DAY)
    _redeem(m["a"], "a1", T0 + 2 * DAY)
    _send(m["b"], "failed", T0 + DAY)  # closed, bought nothing
    # c: sent on day 5 (open), ¥60 on day 9 and a coupon on day 9 (in).
    _send(m["c"], "sent", T0 + 5 * DAY)
    buy(m["c"], "60.00", T0 + 9 * DAY)
    _redeem(m["c"], "c1", T0 + 9 * DAY)
    # d: two steps, the latest on day 6 (open): ¥20 on day 1 counts for neither, ¥30 on day 7 for the latest.
    _send(m["d"], "sent", T0)
    _send(m["d"], "sent", T0 + 6 * DAY, step="day3")
    buy(m["d"], "20.00", T0 + DAY)
    buy(m["d"], "30.00", T0 + 7 * DAY)
    # Control. e: T0 (closed), ¥50 at 6.9 days (in); f: day 4 (open), ¥25 on day 2 (before: out);
    # g: T0 (closed), ¥80 at exactly 7 days (out: the window ends before it).
    _send(m["e"], "control", T0)
    buy(m["e"], "50.00", T0 + 6.9 * DAY)
    _send(m["f"], "control", T0 + 4 * DAY)
    buy(m["f"], "25.00", T0 + 2 * DAY)
    _send(m["g"], "control", T0)
    buy(m["g"], "80.00", T0 + 7 * DAY)
    # In neither arm: skipped at planning, and not done yet.
    _send(m["h"], "skipped", T0, reason="opted_out")
    buy(m["h"], "99.00", T0 + DAY)
    _send(m["i"], "due", T0)
    return m


FIELDS = ("treatment", "control", "reached", "conversion_treatment", "conversion_control",
          "revenue_per_member_treatment_fen", "revenue_per_member_control_fen", "redemptions", "coupon_cost_fen",
          "uplift", "uplift_low", "uplift_high", "revenue_uplift_low_fen", "revenue_uplift_high_fen")


def _welcome(live_only: bool = False) -> dict[str, Any]:
    def rows(s: Any) -> dict[str, Any]:
        r = journeys.journey_rows(s, live_only=live_only)
        return next(x for x in r if x["journey"] == "welcome")
    return {k: v for k, v in db.run(rows, readonly=True).items() if k in FIELDS}


def _freeze(at: datetime) -> outcomes.Freeze:
    return db.run(outcomes.freeze_outcomes, at)


def _stored() -> list[tuple[int, str, datetime, int, int, int, int]]:
    o = SendOutcome
    return db.run(lambda s: [tuple(r) for r in s.execute(
        select(o.member_id, o.arm, o.start_at, o.orders, o.revenue_fen, o.redemptions, o.coupon_cost_fen)
        .order_by(o.member_id))], readonly=True)


def test_frozen_and_open_windows_add_up_to_the_live_figures(engine: Engine) -> None:
    m = _fixture()
    # By hand. Treatment a, b, c, d: a ¥100, c ¥60, d ¥30 bought; four messages sent (d's two); a's and c's
    # coupons. Control e, f, g: only e bought (¥50).
    expected = {"treatment": 4, "control": 3, "reached": 4, "conversion_treatment": 0.75,
                "conversion_control": round(1 / 3, 4), "revenue_per_member_treatment_fen": 4750,
                "revenue_per_member_control_fen": 1667, "redemptions": 2, "coupon_cost_fen": 2000}
    before = _welcome()
    assert {k: before[k] for k in expected} == expected
    assert db.run(outcomes.frozen_until, 7, readonly=True) is None

    first = _freeze(NOW)
    assert (first.frozen, first.refreshed) == (4, 0)
    # Only the closed windows: a, b (treatment), e and g (control).
    assert _stored() == [(m["a"], "treatment", T0, 1, 10000, 1, 1000), (m["b"], "treatment", T0 + DAY, 0, 0, 0, 0),
                         (m["e"], "control", T0, 1, 5000, 0, 0), (m["g"], "control", T0, 0, 0, 0, 0)]
    assert _welcome() == before == _welcome(live_only=True)
    assert db.run(outcomes.frozen_until, 7, readonly=True) == NOW

    # Freezing again writes nothing; so does a run that finds every closed window frozen later on.
    again = _freeze(NOW)
    assert (again.frozen, again.refreshed) == (0, 0)
    assert len(_stored()) == 4
    # Later every window has closed: c, d and f are frozen too, and the figures have not moved.
    assert _freeze(T0 + 20 * DAY).frozen == 3
    assert len(_stored()) == 7 and _welcome() == before == _welcome(live_only=True)
    assert _freeze(T0 + 20 * DAY).frozen == 0


def test_a_newer_send_after_freezing_counts_from_the_newer_send_only(engine: Engine) -> None:
    m = _fixture()
    _freeze(NOW)
    # a is sent again on day 9.5 and buys ¥70 on day 10: from now on only that window counts for a
    # (not the ¥100, not the coupon of day 2).
    _send(m["a"], "sent", T0 + 9.5 * DAY, step="day3")
    buy(m["a"], "70.00", NOW)
    after = _welcome()
    assert (after["treatment"], after["reached"], after["conversion_treatment"]) == (4, 5, 0.75)
    assert after["revenue_per_member_treatment_fen"] == (7000 + 6000 + 3000) // 4
    assert (after["redemptions"], after["coupon_cost_fen"]) == (1, 1000)
    assert after == _welcome(live_only=True)
    # Once that window has closed, a's row is replaced by the newer one.
    assert _freeze(T0 + 17 * DAY).frozen == 4  # a again, c, d, f
    assert [r for r in _stored() if r[0] == m["a"]] == [(m["a"], "treatment", T0 + 9.5 * DAY, 1, 7000, 0, 0)]
    assert _welcome() == after == _welcome(live_only=True)


def test_an_order_posted_late_into_a_frozen_window_is_counted_at_the_next_freeze(engine: Engine) -> None:
    m = _fixture()
    _freeze(NOW)
    # A till that was offline posts b's ¥45 order of day 2 (inside b's closed window) a day later.
    db.run(orders.record_order, "pos", {"external_id": "LATE-1", "placed_at": (T0 + 2 * DAY).isoformat(),
                                        "amount": "45.00", "member_id": m["b"]}, now=NOW + DAY)
    live = _welcome(live_only=True)
    assert live["conversion_treatment"] == 1.0 and _welcome() != live  # frozen until the next run
    late = _freeze(NOW + 1.1 * DAY)
    assert late.refreshed == 1
    assert _welcome() == live
    assert [r for r in _stored() if r[0] == m["b"]] == [(m["b"], "treatment", T0 + DAY, 1, 4500, 0, 0)]


def test_a_closed_account_keeps_its_outcome_like_its_orders(engine: Engine) -> None:
    m = _fixture()
    _freeze(NOW)
    db.run(membership.close_account, m["a"], actor="member", now=NOW)
    assert _welcome() == _welcome(live_only=True)
    assert _welcome()["treatment"] == 4


def test_schedulers_freezing_at_once_write_each_row_once(engine: Engine) -> None:
    _fixture()
    before = _welcome()
    results = in_parallel([lambda: _freeze(NOW) for _ in range(4)], workers=4)
    assert all(isinstance(r, outcomes.Freeze) for r in results), results
    assert sum(r.frozen for r in results) == 4
    assert db.run(lambda s: s.execute(select(func.count()).select_from(SendOutcome)).scalar()) == 4
    assert _welcome() == before


def test_migration_0013_goes_down_and_up(engine: Engine) -> None:
    from sqlalchemy import inspect

    from loyalty import migrate
    from tests.loyalty.test_handoff import _downgrade

    _fixture()
    before = _welcome()
    _freeze(NOW)
    _downgrade(engine, "0012")
    assert not {"send_outcomes", "outcome_freezes"} & set(inspect(engine).get_table_names())
    migrate.upgrade(engine)
    # Nothing frozen after the way back: all live, the same figures; the next freeze starts from nothing.
    assert db.run(outcomes.frozen_until, 7, readonly=True) is None and _welcome() == before
    assert _freeze(NOW).frozen == 4 and _welcome() == before
