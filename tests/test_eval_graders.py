"""Graders of the public benchmarks: math-verify (equal values in different forms), the answer-letter
extractor, lm-eval's IFEval checkers, and the readiness check before any generation."""

from __future__ import annotations

import threading

import pytest

from distill_lab.stages.evaluate.graders import (
    check_ifeval_ready,
    extract_letter,
    grade,
    grade_ifeval,
    grade_math,
    math_equal,
)
from distill_lab.stages.evaluate.suites.specs import BenchItem

HALF = ["\\frac{1}{2}", "0.5", "1/2"]


@pytest.mark.parametrize("gold", HALF)
@pytest.mark.parametrize("answer", ["The answer is $\\boxed{\\frac{1}{2}}$.", "So $\\boxed{0.5}$", "\\boxed{1/2}",
                                    "Final: \\boxed{\\dfrac12}", "It is 0.5", "\\boxed{\\frac{2}{4}}"])
def test_equal_values_in_different_forms_grade_equal(gold, answer):
    g = grade_math(answer, gold)
    assert g.correct, (answer, gold, g)
    assert g.extracted is not None


@pytest.mark.parametrize("answer", ["\\boxed{3}", "\\boxed{0.51}", "no number here", "", "\\boxed{-1/2}"])
def test_other_values_grade_wrong(answer):
    assert not grade_math(answer, "\\frac{1}{2}").correct


def test_boxed_answer_wins_over_other_numbers():
    # the last boxed value is the answer, not the numbers of the working before it
    assert grade_math("2 + 2 = 4, then 4 / 8 = 0.5, so \\boxed{\\frac{1}{2}}", "1/2").correct
    assert not grade_math("1/2 was my first guess, but \\boxed{3}", "1/2").correct


def test_math_grading_in_a_worker_thread_runs_without_signal_timeouts():
    out = {}

    def work():
        out["ok"] = grade_math("\\boxed{0.5}", "\\frac{1}{2}").correct
        out["equal"] = math_equal("1/2", "0.5")

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert out == {"ok": True, "equal": True}


def test_math_equal_groups_values():
    assert math_equal("\\frac{1}{2}", "0.5") and math_equal("1/2", "1/2")
    assert not math_equal("1/2", "3")


@pytest.mark.parametrize("text, letter", [
    ("Answer: C", "C"), ("The answer is (B).", "B"), ("$\\boxed{D}$", "D"), ("Answer: $C$", "C"),
    ("So the final answer is **D**", "D"), ("B", "B"), ("I first thought (A), but the answer is C", "C"),
    ("ANSWER: B", "B"), ("\\boxed{\\text{A}}", "A"), ("Apples are red.", None), ("A car is fast.", None),
    ("the answer is a guess", None), ("Answer: E", None),  # E is not one of four options
])
def test_letter_extractor(text, letter):
    assert extract_letter(text, 4) == letter


def test_choice_grading_reads_only_the_answer_it_is_given():
    item = BenchItem("q", "?", "C", choices=["w", "x", "y", "z"])
    assert grade("choice", "Answer: C", item).correct
    assert not grade("choice", "Answer: A", item).correct


def _ifeval(ids, kwargs, prompt="Write."):
    return BenchItem("i", prompt, "", extra={"instruction_id_list": ids, "kwargs": kwargs})


def test_ifeval_strict_and_loose_from_lm_eval():
    item = _ifeval(["punctuation:no_comma", "change_case:english_lowercase"], [{}, {}])
    ok = grade_ifeval("the sea is wide and calm today", item)
    assert ok.correct and ok.detail["strict"] == [True, True]
    bad = grade_ifeval("The sea, wide.", item)
    assert not bad.correct and bad.detail["strict"] == [False, False]
    # loose accepts a response whose first line breaks the rule (lm-eval's loose variants)
    words = _ifeval(["startend:end_checker"], [{"end_phrase": "Bye."}])
    assert grade_ifeval("All done. Bye.", words).correct
    assert not grade_ifeval("Bye. Then more text", words).correct
    # None-valued kwargs (the hub's all-keys layout) are dropped as lm-eval does
    n = _ifeval(["length_constraints:number_words"], [{"relation": "at least", "num_words": 5, "keyword": None}])
    assert grade_ifeval("one two three four five six", n).correct
    assert not grade_ifeval("one two", n).correct


def test_ifeval_readiness_names_unknown_instructions():
    with pytest.raises(ValueError, match="unknown IFEval instruction 'no:such_check'"):
        check_ifeval_ready([_ifeval(["no:such_check"], [{}])])
    check_ifeval_ready([_ifeval(["punctuation:no_comma"], [{}])])  # known and runnable: no error
