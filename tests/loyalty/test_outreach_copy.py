"""Staff-edited copy: the next message uses it, bad copy is refused and writes nothing, a planned broadcast is fixed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from loyalty import db
from loyalty.audit import AuditEntry
from loyalty.errors import InvalidInput, Refused
from loyalty.outreach import copy
from loyalty.outreach import service as svc
from loyalty.reports import outreach as staff_journeys
from tests.loyalty.corekit import counts
from tests.loyalty.test_outreach import CFG, DAY, deliver, plan, web_member

WELCOME_ZH = "欢迎！每消费1元得1积分。附近门店：{store_zh}"


def test_edited_copy_goes_out_and_a_reset_brings_the_code_copy_back(engine: Any) -> None:
    a = web_member()
    db.run(copy.set_copy, "welcome", "day0", WELCOME_ZH, "Welcome! 1 point per yuan. Nearest: {store_en}",
           actor="staff:mkt")
    plan("welcome", DAY + timedelta(hours=1), replace(CFG, holdout_percent=0.0))
    deliver(DAY + timedelta(hours=1))
    (text,) = db.run(svc.inbox_take, a, DAY + timedelta(hours=2))
    assert text == "欢迎！每消费1元得1积分。附近门店：官网商城"  # the member joined through no store
    steps = {st["step"]: st for st in db.run(staff_journeys.journey_copy, "welcome", readonly=True)["steps"]}
    assert steps["day0"]["edited"] and steps["day0"]["edited_by"] == "staff:mkt"
    assert steps["day3"]["edited"] is False and steps["day3"]["text_zh"] == steps["day3"]["code_zh"]
    db.run(copy.reset_copy, "welcome", "day0", actor="staff:mkt")
    assert db.run(svc.step_for, "welcome", "day0", readonly=True).zh == steps["day0"]["code_zh"]
    actions = db.run(lambda s: list(s.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars()),
                     readonly=True)
    assert actions[-2:] == ["journey_copy", "journey_copy_reset"]


@pytest.mark.parametrize("zh, en, field, words", [
    ("您的积分：{balance}", "Points: {points}", "text_zh", "{balance} is not filled in"),
    ("{points}积分将于{date}到期", "Expiring {points:>9}", "text_en", "is no placeholder"),
    ("{points.__class__}", "x", "text_zh", "is no placeholder"),
    ("积分 { 到期", "x", "text_zh", "is no placeholder"),
    ("  ", "Points expire", "text_zh", "required"),
    ("积分" * 151, "x", "text_zh", "at most 300"),
])
def test_bad_copy_is_refused_with_its_field_and_writes_nothing(engine: Any, zh: str, en: str, field: str,
                                                                words: str) -> None:
    before = counts()
    with pytest.raises(InvalidInput) as err:
        db.run(copy.set_copy, "points_expiring", "d30", zh, en, actor="staff:mkt")
    assert err.value.params["field"] == field and words in str(err.value)
    with pytest.raises(InvalidInput):
        db.run(staff_journeys.preview_copy, "points_expiring", "d30", zh, en, actor="staff:mkt")
    assert counts() == before


def test_a_preview_renders_every_placeholder_and_writes_nothing(engine: Any) -> None:
    web_member()
    before = counts()
    p = db.run(staff_journeys.preview_copy, "points_expiring", "d30", "{points}积分将于{date}到期",
               "{points} points expire on {date}", actor="staff:mkt")
    assert (p["message_zh"], p["message_en"]) == ("500积分将于2026-12-31到期", "500 points expire on 2026-12-31")
    assert counts() == before


def test_a_broadcasts_copy_changes_until_it_is_planned(engine: Any) -> None:
    web_member()
    send_at = DAY + timedelta(hours=2)
    with pytest.raises(InvalidInput):  # a placeholder nobody fills is refused at creation too
        db.run(svc.create_broadcast, "B-BAD", {}, "您好{name}", "Hi {name}", send_at, actor="ops")
    db.run(svc.create_broadcast, "B-COPY", {}, "周末上新", "New this weekend", send_at, actor="ops")
    db.run(copy.set_copy, "broadcast:B-COPY", "main", "周末上新，{store_zh}见", "New at {store_en}", actor="ops")
    assert db.run(svc.step_for, "broadcast:B-COPY", readonly=True).zh == "周末上新，{store_zh}见"
    db.run(svc.plan_all, send_at, replace(CFG, journeys=()))
    with pytest.raises(Refused):
        db.run(copy.set_copy, "broadcast:B-COPY", "main", "改了", "Changed", actor="ops")
    (st,) = db.run(staff_journeys.journey_copy, "broadcast:B-COPY", readonly=True)["steps"]
    assert st["editable"] is False and st["text_en"] == "New at {store_en}"
