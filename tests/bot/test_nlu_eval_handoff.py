"""The trained model on the held-out set: no message outside the complaint/handoff capability reaches a person.

Parses all 2,520 messages of tests/nlu_eval with models/loyalty.tar.gz (about
a minute) and applies the same behaviour mapping as bench/nlu_eval.py,
confidence gates included. Without a trained model it is skipped, and fails under CI.
"""

from __future__ import annotations

import pytest

from bench.nlu_eval import load_cases, run
from tests.support.stack import MODEL, require_model


@pytest.mark.timeout(1800)  # about a minute alone; ten times that on a loaded 2-core machine
def test_no_message_outside_the_handoff_capability_hands_over() -> None:
    require_model()
    cases = load_cases()
    assert len(cases) >= 2520
    outcomes = run(MODEL, cases)
    wrong = [(o.language, o.capability, o.intent, round(o.confidence, 2))
             for o in outcomes if o.behaviour == "handoff" and o.capability != "handoff"]
    assert wrong == []
