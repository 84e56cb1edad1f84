"""The crisis detector on its evaluation set (safety/data/eval.jsonl), as `python -m safety.evaluate`
prints it. The recall goals hold and are checked. The false-positive goals (≤ 0.05 on figurative and
ordinary messages) do not hold yet (docs/safety.md says by how much): until they do, the rates
measured now are the ceiling, so a change that makes the detector worse fails here."""

from __future__ import annotations

import pytest

from proxy.policies.crisis.detector import CrisisDetector
from safety.dataset import EVAL_FILE, RISK_KINDS, SAFE_KINDS, load, load_training
from safety.evaluate import GOALS, LIMITS, evaluate, overlap, report

# The false-positive rates of the model in proxy/policies/crisis/model/, as measured; above LIMITS.
MEASURED_FALSE_POSITIVES = {"figurative": 0.179, "ordinary": 0.294}  # 10/56 and 34/116, 2026-12-02


@pytest.fixture(scope="module")
def evaluation():
    return evaluate(CrisisDetector.load(), load(EVAL_FILE))


def test_the_evaluation_set_covers_every_kind_in_both_languages():
    examples = load(EVAL_FILE)
    assert len(examples) >= 300
    for kind in (*RISK_KINDS, *SAFE_KINDS):
        for lang in ("en", "es"):
            assert sum(e.kind == kind and e.lang == lang for e in examples) >= 10, (kind, lang)


def test_no_evaluation_message_is_in_the_training_data():
    assert overlap(load_training(), load(EVAL_FILE)) == set()


def test_recall_on_clear_and_indirect_risk_meets_its_goal(evaluation):
    print(report(evaluation))
    for kind, goal in GOALS.items():
        assert evaluation.by_kind[kind].rate >= goal, report(evaluation)


def test_false_positives_on_figurative_and_ordinary_messages_grow_no_further(evaluation):
    for kind, measured in MEASURED_FALSE_POSITIVES.items():
        assert evaluation.by_kind[kind].rate <= max(measured, LIMITS[kind]), report(evaluation)
