"""Running actions as the action server would: a real Tracker, the real domain, a real database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from loyalty import db
from loyalty.catalogue.models import Store
from loyalty.coupons import service as coupons
from loyalty.membership import service as membership
from loyalty.orders import service as orders

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc)


@lru_cache(maxsize=1)
def domain() -> dict[str, Any]:
    """The domain as Rasa sends it to the action server."""
    from rasa.shared.core.domain import Domain

    path = ROOT / "domain"
    return Domain.load(str(path)).as_dict()


@dataclass
class Result:
    messages: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def responses(self) -> list[str]:
        return [m.get("response") for m in self.messages]

    def message(self, response: str) -> dict[str, Any]:
        for m in self.messages:
            if m.get("response") == response:
                return m
        raise AssertionError(f"{response} not said; said {self.responses}")

    def slot(self, name: str) -> Any:
        for e in reversed(self.events):
            if e.get("event") == "slot" and e.get("name") == name:
                return e.get("value")
        raise AssertionError(f"slot {name} not set; events {self.events}")


def run(
    action: Action,
    *,
    sender: str = "web-visitor-1",
    slots: dict[str, Any] | None = None,
    intent: str = "greet",
    entities: list[dict[str, Any]] | None = None,
    text: str = "",
    channel: str = "webchat",
    message_id: str = "m1",
    just_set: dict[str, Any] | None = None,
    earlier: list[list[dict[str, Any]]] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Result:
    """Run one action once, as the action server would; ``earlier``: the entities of earlier messages;
    ``history``: whole events (as Rasa sends them) before the latest message."""
    all_slots = {name: None for name in domain().get("slots", {})}
    all_slots.update({"language": "zh", **(slots or {})})
    latest = {"intent": {"name": intent, "confidence": 1.0}, "entities": entities or [], "text": text,
              "message_id": message_id}
    events = list(history or [])
    events += [{"event": "user", "text": "", "parse_data": {"entities": found}, "input_channel": channel}
               for found in earlier or []]
    events += [{"event": "user", "text": text, "parse_data": latest, "input_channel": channel}]
    # Slots Rasa extracted from this message, as a form validation action sees them.
    events += [{"event": "slot", "name": k, "value": v} for k, v in (just_set or {}).items()]
    loop = {"name": "join_form"} if just_set else {}
    tracker = Tracker(sender, all_slots, latest, events, False, None, loop, "action_listen")
    dispatcher = CollectingDispatcher()
    out = asyncio.run(action.run(dispatcher, tracker, domain()))
    return Result(dispatcher.messages, list(out or []))


@pytest.fixture
def shop(sqlite_engine: Any) -> dict[str, Any]:
    """A store, the welcome and a few public campaigns, and one member with an order."""

    def fill(s):  # type: ignore[no-untyped-def]
        s.add(Store(code="SH001", name_zh="上海静安店", name_en="Shanghai Jing'an", city="上海"))
        s.flush()
        coupons.create_campaign(s, code="WELCOME", name_zh="新人礼 满50减10", name_en="Welcome 10 off 50",
                                kind="threshold", threshold_fen=5000, discount_fen=1000, valid_days=30,
                                audience="welcome")
        coupons.create_campaign(s, code="SAVE20", name_zh="满100减20", name_en="20 off 100", kind="threshold",
                                threshold_fen=10000, discount_fen=2000, valid_days=30, total_stock=100)
        coupons.create_campaign(s, code="PCT15", name_zh="全场85折", name_en="15% off everything", kind="percent",
                                percent_off=15, valid_days=14, total_stock=5)
        coupons.create_campaign(s, code="TOTE", name_zh="积分换购帆布袋", name_en="Tote bag for points",
                                kind="gift", gift_sku="GIFT-TOTE", valid_days=60, points_cost=100, total_stock=50,
                                per_member_limit=2)
        coupons.create_campaign(s, code="GOLDONLY", name_zh="金卡专享满200减50", name_en="Gold: 50 off 200",
                                kind="threshold", threshold_fen=20000, discount_fen=5000, valid_days=30,
                                min_tier="gold")

    db.run(fill)
    m = db.run(membership.signup, phone="13800138000", consent=True, name="小王", channel="webchat",
               external_id="web-visitor-1", store_code="SH001")
    db.run(orders.record_order, "pos", {"external_id": "O-1", "placed_at": NOW.isoformat(), "amount": "150.00",
                                        "member_id": m.card.id})
    return {"member_id": m.card.id, "referral_code": m.card.referral_code}


@pytest.fixture(autouse=True)
def _no_trained_recommender(tmp_path: Path) -> None:
    """Actions see no recommendation model unless a test trains one (never a developer's var/models)."""
    from loyalty import config

    config.use(config.Settings(model_dir=str(tmp_path / "reco-models")))
