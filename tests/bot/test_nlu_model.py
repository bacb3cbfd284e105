"""The trained model on a few messages of the kinds issue 12 named (not from the held-out set).

A costly intent said unsurely, or two close meanings, become nlu_fallback with a
two-button question; clear questions get their own answer. Needs models/loyalty.tar.gz.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actions.clarify import choices
from tests.support.stack import load_agent


@pytest.fixture(scope="module")
def parse() -> Any:
    agent = load_agent()
    return lambda text: asyncio.run(agent.parse_message(text))


@pytest.mark.parametrize("text, intent", [
    ("上个礼拜在超市买的东西积分进来了吗", "points_history"),  # a question, not a complaint
    ("did the points from saturday's shop come in", "points_history"),
    ("随便给我张券", "list_coupons"),  # vague: a list, not a claim
    ("拉新能拿多少奖励", "referral_info"),
    ("join the vip program", "join"),
    ("领第三张", "claim_coupon"),
])
def test_clear_questions_get_their_answer(parse: Any, text: str, intent: str) -> None:
    assert parse(text)["intent"]["name"] == intent


@pytest.mark.parametrize("text, offered", [
    ("my points did not arrive", {"points_history", "complain"}),  # points or a complaint?
    ("我有专属客服吗", {"ask_tier", "human"}),  # a tier's dedicated agent, or a person now?
    ("投诉积分", {"complain", "ask_points"}),  # a complaint said unsurely
])
def test_unsure_costly_or_close_calls_ask_with_two_buttons(parse: Any, text: str, offered: set[str]) -> None:
    result = parse(text)
    assert result["intent"]["name"] == "nlu_fallback"
    assert set(choices(result["intent_ranking"])) == offered


def test_a_pick_by_number_names_the_coupon(parse: Any) -> None:
    entities = [e for e in parse("number 2 please")["entities"] if e["entity"] == "coupon_choice"]
    assert entities and {e["value"] for e in entities} == {"2"}
