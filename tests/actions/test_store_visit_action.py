"""action_store_welcome counts the visit for the store's QR funnel: once per message, a known store only."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from actions.membership import ActionStoreWelcome
from loyalty import db
from loyalty.visits import service as visits
from loyalty.visits.models import QrVisit
from tests.actions.conftest import run


def _visits() -> list[tuple[str, str, str]]:
    with db.session(readonly=True) as s:
        return [tuple(r) for r in s.execute(select(QrVisit.channel, QrVisit.kind, QrVisit.visitor_key)
                                            .order_by(QrVisit.id))]  # type: ignore[misc]


def _visit(sender: str, channel: str, message_id: str, code: str = "SH001", **entities: Any) -> Any:
    found = [{"entity": "store_code", "value": code}] + [{"entity": k, "value": v} for k, v in entities.items()]
    return run(ActionStoreWelcome(), sender=sender, channel=channel, intent="store_visit", entities=found,
               message_id=message_id)


def test_scans_follows_and_page_opens_are_recorded_once(shop: dict[str, Any]) -> None:
    follow = _visit("o-new-follower", "wechat", "m1", first_follow=True)
    assert follow.responses == ["utter_store_welcome_join"]
    _visit("o-new-follower", "wechat", "m1", first_follow=True)  # Rasa retries the action: not counted again
    _visit("o-new-follower", "wechat", "m2", code="sh001", first_follow=False)
    member = _visit("web-visitor-1", "webchat", "m9", first_follow=False)
    assert member.responses == ["utter_store_welcome_member"]
    assert _visits() == [
        ("wechat", "follow", visits.visitor_key("wechat", "o-new-follower")),
        ("wechat", "scan", visits.visitor_key("wechat", "o-new-follower")),
        ("webchat", "page_open", visits.visitor_key("webchat", "web-visitor-1")),
    ]


def test_unknown_stores_and_remembered_stores_record_nothing(shop: dict[str, Any]) -> None:
    unknown = _visit("o-someone", "wechat", "m1", code="XX9", first_follow=True)
    assert unknown.responses == ["utter_welcome_join"]
    _visit("o-someone", "wechat", "m2", code='SH001"}{', first_follow=True)
    # A follow without a store's code, from a shopper whose store was remembered: a welcome, not a visit.
    plain = run(ActionStoreWelcome(), sender="o-someone", channel="wechat", intent="store_visit",
                slots={"store_code": "SH001"}, entities=[{"entity": "first_follow", "value": True}], message_id="m3")
    assert plain.responses == ["utter_store_welcome_join"]
    assert _visits() == []


def test_a_failure_while_recording_still_welcomes(shop: dict[str, Any], sqlite_engine: Engine,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with sqlite_engine.begin() as conn:  # the visits table is gone: writing it fails as an outage would
        conn.execute(text("DROP TABLE qr_visits"))
    r = _visit("o-unlucky", "wechat", "m1", first_follow=True)
    assert r.responses == ["utter_store_welcome_join"]
    assert r.slot("store_code") == "SH001" and r.slot("is_member") is False
    assert "store visit not recorded" in caplog.text and "o-unlucky" not in caplog.text
