"""Serving: rules are found by index, and TED and memoization skip a step a rule has decided.

Rasa runs every policy of the prediction graph for every action it predicts,
then keeps the winner (``DefaultPolicyPredictionEnsemble``). A rule's
prediction has confidence 1.0 and RulePolicy has the highest priority, so
whenever a rule applies, TED's and the memoization policy's answers are
computed and thrown away. On this assistant rules decide most steps (every
``action_listen`` after a reply, and most first actions of a turn), and TED's
prediction is the most expensive part of a turn after the NLU (docs/scaling.md).

:func:`install` rewrites the prediction graph as a model is loaded: the TED and
memoization nodes also receive RulePolicy's prediction, and when it is
*decisive* (:func:`decides`: nothing they could predict would win) they return
an empty prediction instead of running. The ensemble then picks exactly the
action it would have picked: the rule's. When the rule is not decisive (no rule
applies, its action was rejected, a policy is configured with a higher
priority), they predict as before. ``tests/bot/test_rules_first.py`` replays the
story tests through both graphs and compares every prediction.

RulePolicy itself checks each of its rules (351 on this assistant) against
the conversation's states on every prediction, twice (by text, then by
intent). :class:`IndexedRulePolicy` first narrows them to the rules whose last
state can match the current one, by its previous action, with the same
index for every prediction; the remaining rules get Rasa's own full check,
so it finds the same rules. It also formats the states for its debug line
only when debug lines are written, and replays the tracker once per
prediction where Rasa replays it twice (by text, then by intent).

Training, ``rasa test`` and ``rasa shell`` are unchanged; ``python -m
bot.rasa_run`` (how the launcher starts Rasa) installs it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections import defaultdict
from typing import Any

from rasa.core.policies.memoization import AugmentedMemoizationPolicy, MemoizationPolicy
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.engine.graph import GraphSchema, SchemaNode
from rasa.shared.core.constants import PREVIOUS_ACTION, SHOULD_NOT_BE_SET
from rasa.shared.core.domain import Domain, State
from rasa.shared.core.events import ActionExecuted, ActionExecutionRejected
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

PREDICT = "predict_action_probabilities"
# The extra input the rewritten nodes receive: RulePolicy's prediction for the same step.
RULE_INPUT = "rule_prediction"

_ORIGINAL: Any = None


def rejected_action(tracker: DialogueStateTracker) -> str | None:
    """The action the ensemble will zero in every prediction: the last one, if it was rejected."""
    for event in reversed(tracker.events):
        if isinstance(event, ActionExecutionRejected):
            return event.action_name
        if isinstance(event, ActionExecuted):
            return None
    return None


def decides(rule: PolicyPrediction, tracker: DialogueStateTracker, domain: Domain, priority: int) -> bool:
    """Whether the rule's prediction wins the ensemble whatever a policy of ``priority`` predicts."""
    if rule.is_no_user_prediction:  # a form's happy path: overrules every other prediction
        return True
    if not rule.probabilities or rule.max_confidence < 1.0 or rule.policy_priority <= priority:
        return False
    rejected = rejected_action(tracker)
    return rejected is None or domain.index_for_action(rejected) != rule.max_confidence_index


class RulesFirst(Policy):
    """A policy that stands aside when the rule's prediction for this step is decisive."""

    skipped = 0  # steps not predicted (per class), for the tests

    def predict_action_probabilities(  # type: ignore[override]
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        rule_prediction: PolicyPrediction | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        if rule_prediction is not None and decides(rule_prediction, tracker, domain, self.priority):
            type(self).skipped += 1
            return self._prediction(self._default_predictions(domain))
        return super().predict_action_probabilities(tracker, domain, rule_only_data=rule_only_data, **kwargs)


class RulesFirstTEDPolicy(RulesFirst, TEDPolicy):
    """TEDPolicy that does not predict a step a rule decides."""


class RulesFirstMemoizationPolicy(RulesFirst, MemoizationPolicy):
    """MemoizationPolicy that does not predict a step a rule decides."""


class RulesFirstAugmentedMemoizationPolicy(RulesFirst, AugmentedMemoizationPolicy):
    """AugmentedMemoizationPolicy that does not predict a step a rule decides."""


# Rules whose last state puts no constraint on the previous action's name (checked in full).
ANY = "*"


class RuleIndex:
    """A rule lookup's keys grouped by the previous action their last state asks for."""

    def __init__(self, lookup: dict[str, str]) -> None:
        self.size = len(lookup)
        self.every = list(lookup)  # asked for when the previous action has no name to index by
        self.by_action: dict[str, list[str]] = defaultdict(list)
        self.starters: list[str] = []  # last state without a previous action (a conversation start)
        for key in lookup:
            last = json.loads(key)[-1]
            previous = last.get(PREVIOUS_ACTION)
            if not previous:
                self.starters.append(key)
                continue
            name = previous.get("action_name")
            self.by_action[name if name and name != SHOULD_NOT_BE_SET else ANY].append(key)

    def candidates(self, state: State) -> list[str]:
        """The keys whose last rule state can match ``state`` (a superset of those that do)."""
        previous = state.get(PREVIOUS_ACTION)
        name = previous.get("action_name") if previous else None
        if not name:
            return self.every
        return self.by_action.get(name, []) + self.by_action.get(ANY, [])


class _ReplayedOnce:
    """``TrackerFeaturizer._create_states`` that answers a repeated call for the same tracker, as it
    stands, from the last replay (a copy: the featurizer edits the states it is given)."""

    def __init__(self, create_states: Any) -> None:
        self._create_states = create_states
        self._last: tuple[Any, tuple[Any, ...], list[State]] | None = None
        self.replays = self.answered = 0  # for the tests

    def __call__(self, tracker: DialogueStateTracker, domain: Domain, omit_unset_slots: bool = False,
                 ignore_rule_only_turns: bool = False, rule_only_data: dict[str, Any] | None = None) -> list[State]:
        key = (len(tracker.events), id(domain), omit_unset_slots, ignore_rule_only_turns,
               json.dumps(rule_only_data, sort_keys=True, default=str))
        last = self._last
        if last is not None and last[0] is tracker and last[1] == key:
            self.answered += 1
            return _copy_states(last[2])
        self.replays += 1
        states = self._create_states(tracker, domain, omit_unset_slots=omit_unset_slots,
                                     ignore_rule_only_turns=ignore_rule_only_turns, rule_only_data=rule_only_data)
        self._last = (tracker, key, _copy_states(states))
        return states


def _copy_states(states: list[State]) -> list[State]:
    """A copy the featurizer may edit: states are dicts of sub-state dicts whose values are texts,
    numbers and tuples, so copying both dict levels is a deep copy (``copy.deepcopy`` is slow here)."""
    return [{kind: dict(sub) if isinstance(sub, dict) and all(isinstance(v, _FLAT) for v in sub.values())
             else copy.deepcopy(sub) for kind, sub in state.items()} for state in states]


_FLAT = (str, int, float, bool, tuple, type(None))


class IndexedRulePolicy(RulePolicy):
    """RulePolicy that checks only the rules whose last state can match the conversation's."""

    @staticmethod
    def format_tracker_states(states: list[dict[str, Any]]) -> str:
        """The states as text for Rasa's debug log line, and only when that line is written.

        RulePolicy formats every state (and the log call deep-copies the text) on every
        prediction, whether or not debug lines are written.
        """
        if not logging.getLogger("rasa.core.policies.rule_policy").isEnabledFor(logging.DEBUG):
            return ""
        return RulePolicy.format_tracker_states(states)

    def _prediction_states(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        use_text_for_last_user_input: bool = False,
        rule_only_data: dict[str, Any] | None = None,
    ) -> list[State]:
        """Rasa's states, with the tracker replayed once per prediction instead of twice.

        After a shopper's message RulePolicy asks for the states twice (the message by its text,
        then by its intent); both come from the same replay of the tracker (``past_states``), and
        only the last state differs, which the featurizer sets on its own copy.
        """
        featurizer: Any = self.featurizer
        if featurizer is not None and "_create_states" not in featurizer.__dict__:
            featurizer._create_states = _ReplayedOnce(type(featurizer)._create_states)
        return super()._prediction_states(tracker, domain, use_text_for_last_user_input, rule_only_data)

    def _get_possible_keys(self, lookup: dict[str, str], states: list[State]) -> set[str]:
        if not states:
            return super()._get_possible_keys(lookup, states)
        indexes: dict[int, RuleIndex] = self.__dict__.setdefault("_rule_indexes", {})
        index = indexes.get(id(lookup))
        if index is None or index.size != len(lookup):
            index = indexes[id(lookup)] = RuleIndex(lookup)
        possible = set(index.candidates(states[-1]))
        for i, state in enumerate(reversed(states)):
            possible = {key for key in possible if self._is_rule_applicable(key, i, state)}
        return possible


# Exact classes only: a subclass of these may predict differently and is left alone.
REPLACEMENTS: dict[type, type] = {
    TEDPolicy: RulesFirstTEDPolicy,
    MemoizationPolicy: RulesFirstMemoizationPolicy,
    AugmentedMemoizationPolicy: RulesFirstAugmentedMemoizationPolicy,
}


def rewrite(schema: GraphSchema) -> GraphSchema:
    """``schema`` with RulePolicy indexed and TED and memoization fed its prediction.

    Unchanged unless the schema predicts with exactly one RulePolicy (Rasa's own class).
    """
    rules = [name for name, node in schema.nodes.items() if node.uses is RulePolicy and node.fn == PREDICT]
    if len(rules) != 1:
        return schema
    nodes: dict[str, SchemaNode] = {}
    for name, node in schema.nodes.items():
        replacement = REPLACEMENTS.get(node.uses)
        if node.uses is RulePolicy:  # the same node loads and predicts: both use the subclass
            node = dataclasses.replace(node, uses=IndexedRulePolicy)
        elif replacement is not None and node.fn == PREDICT and RULE_INPUT not in node.needs:
            node = dataclasses.replace(node, uses=replacement, needs={**node.needs, RULE_INPUT: rules[0]})
        nodes[name] = node
    return GraphSchema(nodes)


def _load_predict_graph_runner(storage_path: Any, archive: Any, storage_class: Any, runner_class: Any) -> Any:
    class RulesFirstRunner(runner_class):  # type: ignore[misc,valid-type]
        @classmethod
        def create(cls, graph_schema: GraphSchema, *args: Any, **kwargs: Any) -> Any:
            return runner_class.create(rewrite(graph_schema), *args, **kwargs)

    return _ORIGINAL(storage_path, archive, storage_class, RulesFirstRunner)


def install() -> None:
    """Rewrite the prediction graph of every model Rasa loads from now on (idempotent)."""
    global _ORIGINAL
    if _ORIGINAL is not None:
        return
    from rasa.engine import loader

    _ORIGINAL = loader.load_predict_graph_runner
    loader.load_predict_graph_runner = _load_predict_graph_runner
