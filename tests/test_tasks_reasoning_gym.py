"""The reasoning_gym family (optional extra `tasks`): problems from reasoning-gym, verified by its own
score_answer; oracle traces for chain_sum; a clear stop for datasets without one."""

from __future__ import annotations

import json
import random

import pytest

pytest.importorskip("reasoning_gym", reason="the optional extra `tasks` (reasoning-gym) is not installed")

from distill_lab.tasks import get_family  # noqa: E402
from distill_lab.tasks.reasoning_gym_tasks import eval_chain  # noqa: E402

PARAMS = {"dataset": "chain_sum", "config": {"min_terms": 2, "max_terms": 3, "min_digits": 2, "max_digits": 2},
          "ood_config": {"min_terms": 4, "max_terms": 5, "min_digits": 2, "max_digits": 2}}


def test_generator_is_deterministic_and_ood_uses_the_harder_knobs():
    fam = get_family("reasoning_gym", **PARAMS)
    a = fam.generate("train", 10, random.Random(7))
    assert [p.prompt for p in a] == [p.prompt for p in fam.generate("train", 10, random.Random(7))]
    assert [p.prompt for p in a] != [p.prompt for p in fam.generate("train", 10, random.Random(8))]
    assert all(2 <= p.meta["metadata"]["num_terms"] <= 3 for p in a)
    assert all(4 <= p.meta["metadata"]["num_terms"] <= 5 for p in fam.generate("ood", 10, random.Random(7)))


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_oracle_answers_verify_through_score_answer_and_wrong_ones_do_not(effort):
    fam = get_family("reasoning_gym", **PARAMS)
    for p in fam.generate("test", 12, random.Random(effort)):
        reasoning, answer = fam.oracle(p, effort)
        ref = json.loads(p.reference)
        assert eval_chain(ref["entry"]["metadata"]["expression"]) == int(ref["entry"]["answer"])
        checker = get_family("reasoning_gym")  # evaluation: no params, the reference carries the dataset
        assert checker.verify(answer, p.reference) and checker.verify(reasoning + "\n" + answer, p.reference)
        wrong = int(ref["entry"]["answer"]) + 1
        assert not checker.verify(f"The answer is {wrong}.", p.reference)
        assert not checker.verify("The answer is unknown.", p.reference)


def test_trace_detail_follows_effort():
    fam = get_family("reasoning_gym", **PARAMS)
    ps = fam.generate("ood", 15, random.Random(1))
    mean = {e: sum(len(fam.oracle(p, e)[0]) for p in ps) / len(ps) for e in ("low", "medium", "high")}
    assert mean["low"] < mean["medium"] < mean["high"], mean


def test_a_dataset_without_a_tracer_is_verified_but_has_no_oracle():
    fam = get_family("reasoning_gym", dataset="letter_counting")
    (p,) = fam.generate("test", 1, random.Random(0))
    ref = json.loads(p.reference)
    assert get_family("reasoning_gym").verify(f"The answer is {ref['entry']['answer']}.", p.reference)
    with pytest.raises(ValueError, match="'letter_counting' has no oracle trace"):
        fam.oracle(p, "high")
    with pytest.raises(ValueError, match="unknown dataset 'no_such_set'"):
        get_family("reasoning_gym", dataset="no_such_set")
