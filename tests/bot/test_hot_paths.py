"""bot/hot_paths.py: the kept answers are Rasa's own answers, and the NLU thread parses as Rasa does."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from rasa.engine.graph import GraphSchema, SchemaNode
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered, deserialise_events
from rasa.shared.utils.common import all_subclasses

from bot import hot_paths
from tests.support.stack import load_agent


@pytest.fixture(autouse=True)
def installed() -> None:
    hot_paths.install()


def test_every_event_class_is_found_by_its_name_as_rasa_finds_it() -> None:
    first: dict[str, Any] = {}
    for cls in all_subclasses(Event):  # Rasa's own search: the first class with the name wins
        first.setdefault(cls.type_name, cls)
    for name, cls in first.items():
        assert Event.resolve_by_type(name) is cls
        assert Event.resolve_by_type(name) is cls  # and again, from what was kept
    assert Event.resolve_by_type("no_such_event", default=SlotSet) is SlotSet
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")
    assert Event.resolve_by_type("topic") is None


def test_an_event_class_defined_later_is_still_found() -> None:
    class ShopperWaved(SlotSet):
        type_name = "shopper_waved_test_only"

    assert Event.resolve_by_type("shopper_waved_test_only") is ShopperWaved


def test_events_read_back_are_the_events_written() -> None:
    events = [ActionExecuted("action_listen"), UserUttered("你好", {"name": "greet", "confidence": 0.9}),
              SlotSet("is_member", True)]
    assert deserialise_events([e.as_dict() for e in events]) == events


class _Node:
    pass


def _node(**needs: str) -> SchemaNode:
    return SchemaNode(needs=needs, uses=_Node, constructor_name="create", fn="run", config={})


def test_the_graph_to_run_is_the_one_rasa_cuts() -> None:
    schema = GraphSchema({"a": _node(), "b": _node(x="a"), "c": _node(y="b"), "d": _node(), "e": _node(z="d")})
    cut = schema.minimal_graph_schema(["c"])
    assert set(cut.nodes) == {"a", "b", "c"}
    assert schema.minimal_graph_schema(["c"]) is cut  # kept
    assert set(schema.minimal_graph_schema(["e"]).nodes) == {"d", "e"}
    other = GraphSchema({"c": _node()})
    assert set(other.minimal_graph_schema(["c"]).nodes) == {"c"}  # per schema, not per target alone


def test_the_nlu_runs_in_its_thread_and_parses_as_rasa_does() -> None:
    from rasa.core.channels.channel import UserMessage
    from rasa.core.processor import MessageProcessor

    agent = load_agent()
    processor = agent.processor
    assert processor is not None
    rasa_own = MessageProcessor.parse_message.__wrapped__  # type: ignore[attr-defined]
    threads: list[str] = []
    graph = processor._parse_message_with_graph

    def recorded(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return graph(*args)

    processor._parse_message_with_graph = recorded  # type: ignore[method-assign]
    texts = ["我的积分有多少", "有什么优惠券可以领", "推荐点护肤品", "how many points do I have",
             "what coupons can I get", "帮我查下points", "转人工", "hello"]

    async def both(text: str) -> tuple[Any, Any]:
        message = UserMessage(text, sender_id="hot-paths")
        return await processor.parse_message(message), await rasa_own(processor, message)

    async def all_at_once() -> list[tuple[Any, Any]]:
        return list(await asyncio.gather(*(both(t) for t in texts)))

    for ours, theirs in asyncio.run(all_at_once()):
        assert ours["intent"] == theirs["intent"]
        assert ours["entities"] == theirs["entities"]
        assert ours["intent_ranking"] == theirs["intent_ranking"]
    # Ours ran in the NLU worker; Rasa's own on the event loop's thread.
    assert threads.count("MainThread") == len(texts)
    assert sum(name.startswith("nlu") for name in threads) == len(texts)


def test_a_slot_copy_is_the_copy_rasa_made() -> None:
    import copy

    from rasa.shared.core.slots import BooleanSlot, CategoricalSlot, FloatSlot, TextSlot

    slots = [TextSlot("name", [], initial_value="小王"), BooleanSlot("is_member", []),
             CategoricalSlot("language", [], values=["zh", "en"], initial_value="zh"),
             FloatSlot("points", [], max_value=1e9)]
    slots[1].value = True
    for slot in slots:
        ours = copy.copy(slot)
        assert hot_paths._plain(type(slot))  # the direct path was taken
        assert type(ours) is type(slot) and ours is not slot
        assert ours.__dict__ == slot.__dict__
        assert ours.value == slot.value and ours.as_feature() == slot.as_feature()
        before = slot.value
        ours.value = None  # a copy's value is its own
        assert slot.value == before

    class Kept(TextSlot):
        def __setstate__(self, state: dict[str, Any]) -> None:
            self.__dict__.update(state, restored=True)

    special = copy.copy(Kept("x", []))
    assert special.__dict__.get("restored") is True  # its own protocol still runs
