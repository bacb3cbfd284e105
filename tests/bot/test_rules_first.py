"""The rewritten prediction graph (bot/rules_first.py) predicts exactly what Rasa's own graph predicts.

Both graphs are built from the trained model; every step of every story test
(tests/stories) and training story (data/stories) is predicted by both and compared: the action, its confidence
and the policy (by Rasa's class name). Every story is also replayed without its slot
events, off the script, where rules conditioned on slots do not apply. The
rewritten graph must have skipped TED on decided steps and still let TED
predict the others, or the comparison would prove nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import rules_first
from tests.support.stack import MODEL

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="needs the trained model (make train)")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graphs() -> Iterator[tuple[Any, Any, Any, str]]:
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    from bot import model_loading

    model_loading.install()
    with tempfile.TemporaryDirectory() as tmp:
        storage, metadata = LocalModelStorage.from_model_archive(Path(tmp), MODEL)
        target = metadata.core_target
        schema = metadata.predict_schema.minimal_graph_schema([target])
        context = ExecutionContext(graph_schema=metadata.predict_schema, model_id=metadata.model_id)
        rasa_own = DaskGraphRunner.create(schema, storage, context)
        ours = DaskGraphRunner.create(rules_first.rewrite(schema), storage, context)
        yield rasa_own, ours, metadata.domain, target


def story_trackers(domain: Any) -> list[Any]:
    from rasa.shared.core.generator import TrainingDataGenerator
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
    from rasa.shared.core.training_data.structures import StoryGraph

    steps = []
    for folder in ("tests/stories", "data/stories"):
        for path in sorted((ROOT / folder).glob("*.yml")):
            steps += YAMLStoryReader(domain).read_from_file(path)
    generator = TrainingDataGenerator(StoryGraph(steps), domain, remove_duplicates=False, augmentation_factor=0)
    return generator.generate_story_trackers()


BASE_NAMES = {"IndexedRulePolicy": "RulePolicy", "RulesFirstTEDPolicy": "TEDPolicy",
              "RulesFirstMemoizationPolicy": "MemoizationPolicy"}


def test_every_story_step_gets_the_same_prediction(graphs: tuple[Any, Any, Any, str]) -> None:
    from rasa.shared.core.events import ActionExecuted, SlotSet
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_own, ours, domain, target = graphs
    ted_skipped = rules_first.RulesFirstTEDPolicy.skipped
    steps, by_ted = 0, 0
    trackers = story_trackers(domain)
    assert len(trackers) >= 60
    # Each story as written, and again without its slot events: off the script, where rules
    # conditioned on slots do not apply and TED has to predict.
    variants = [list(t.events) for t in trackers] + \
        [[e for e in t.events if not isinstance(e, SlotSet)] for t in trackers]
    for story, events in zip(trackers + trackers, variants, strict=True):
        for i, event in enumerate(events):
            if not isinstance(event, ActionExecuted) or i == 0:
                continue
            tracker = DialogueStateTracker.from_events(story.sender_id, events[:i], slots=domain.slots)
            expected = rasa_own.run(inputs={"__tracker__": tracker}, targets=[target])[target]
            got = ours.run(inputs={"__tracker__": tracker}, targets=[target])[target]
            steps += 1
            by_ted += expected.policy_name == "TEDPolicy"

            assert (got.max_confidence_index, BASE_NAMES.get(got.policy_name, got.policy_name)) == \
                (expected.max_confidence_index, expected.policy_name), (story.sender_id, i)
            assert got.max_confidence == pytest.approx(expected.max_confidence)
            assert [type(e) for e in got.events] == [type(e) for e in expected.events]
    assert steps >= 400
    # RulePolicy replayed each tracker once where Rasa replays it twice after a shopper's message.
    rule_node = next(n for n in ours._instantiated_nodes.values()
                     if isinstance(n._component, rules_first.IndexedRulePolicy))
    replayed = rule_node._component.featurizer._create_states
    assert isinstance(replayed, rules_first._ReplayedOnce)
    assert replayed.answered > 0 and replayed.replays <= steps  # at most one replay per prediction
    # Both branches ran: TED stood aside on decided steps and still predicted the rest.
    assert rules_first.RulesFirstTEDPolicy.skipped - ted_skipped >= steps // 2
    assert by_ted > 0


def prediction(probabilities: list[float], priority: int = 6, **flags: Any) -> Any:
    from rasa.core.policies.policy import PolicyPrediction

    return PolicyPrediction(probabilities, "RulePolicy", priority, **flags)


def test_a_rule_decides_only_what_nothing_else_could_win(graphs: tuple[Any, Any, Any, str]) -> None:
    from rasa.shared.core.events import ActionExecuted, ActionExecutionRejected
    from rasa.shared.core.trackers import DialogueStateTracker

    domain = graphs[2]
    names = domain.action_names_or_texts
    sure = [0.0] * len(names)
    sure[names.index("action_check_member")] = 1.0
    fallback = [0.0] * len(names)
    fallback[names.index("action_default_fallback")] = 0.3
    plain = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen")])
    rejected = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen"),
                                                      ActionExecutionRejected("action_check_member")])
    assert rules_first.decides(prediction(sure), plain, domain, priority=1)
    # The ensemble zeroes a rejected action in every prediction: TED must predict.
    assert not rules_first.decides(prediction(sure), rejected, domain, priority=1)
    # No rule applies (only RulePolicy's fallback score), or a policy ranked above rules.
    assert not rules_first.decides(prediction(fallback), plain, domain, priority=1)
    assert not rules_first.decides(prediction(sure, priority=6), plain, domain, priority=7)
    # A form's happy path overrules every prediction.
    assert rules_first.decides(prediction(fallback, is_no_user_prediction=True), plain, domain, priority=1)


def test_a_schema_without_one_rule_policy_is_left_alone(graphs: tuple[Any, Any, Any, str]) -> None:
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.engine.graph import GraphSchema

    rasa_own = graphs[0]
    nodes = {name: node for name, node in rasa_own._graph_schema.nodes.items() if node.uses is not RulePolicy}
    schema = GraphSchema(nodes)
    assert rules_first.rewrite(schema) is schema
    rewritten = rules_first.rewrite(rasa_own._graph_schema)
    assert {node.uses for node in rewritten.nodes.values()} >= {
        rules_first.IndexedRulePolicy, rules_first.RulesFirstTEDPolicy, rules_first.RulesFirstMemoizationPolicy}
