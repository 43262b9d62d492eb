"""Answer extraction on tricky outputs: the thinking is stripped before the family's extractor."""

from __future__ import annotations

import pytest

from distill_lab.stages.evaluate.extract import GenericAnswer, join_thinking, score_output, split_thinking


def test_closed_think_block_splits_thinking_from_answer():
    p = split_thinking("<think>\n3 + 4 = 7\n</think>\n\nThe answer is 7.")
    assert (p.thinking, p.answer, p.think_opened, p.think_unclosed) == ("3 + 4 = 7", "The answer is 7.", True, False)


def test_unclosed_think_has_no_answer():
    p = split_thinking("<think>\nColumn 1: 5 + 8 = 13. The answer is 13")
    assert p.think_unclosed and p.answer == "" and p.thinking.startswith("Column 1")
    s = score_output("<think>\nColumn 1: 5 + 8 = 13. The answer is 13", "addition", "13")
    assert s.extracted is None and s.correct is False


def test_answer_inside_thinking_only_does_not_count():
    text = "<think>\nThe answer is 1023.\n</think>\n\nI am not sure."
    s = score_output(text, "addition", "1023")
    assert s.parsed.answer == "I am not sure."
    assert s.extracted is None and s.correct is False
    # the same thinking followed by the answer is correct
    assert score_output(text.replace("I am not sure.", "The answer is 1023."), "addition", "1023").correct


def test_several_answers_the_family_takes_the_last():
    s = score_output("<think>x</think>The answer is 5. Wait, no: the answer is 7.", "addition", "7")
    assert s.extracted == "7" and s.correct
    assert not score_output("<think>x</think>The answer is 7. No, the answer is 5.", "addition", "7").correct


def test_several_think_blocks_and_prefilled_template():
    p = split_thinking("<think>a</think> draft <think>b</think>\nThe answer is 9.")
    assert p.answer == "The answer is 9." and "a" in p.thinking and "b" in p.thinking
    # a template that prefills "<think>\n" leaves only the closing tag in the output
    p = split_thinking("2 + 7 = 9\n</think>\n\nThe answer is 9.")
    assert p.thinking == "2 + 7 = 9" and p.answer == "The answer is 9." and not p.think_unclosed


def test_no_thinking_at_all_is_all_answer():
    p = split_thinking("The answer is 12.")
    assert p.answer == "The answer is 12." and p.thinking == "" and not p.think_opened
    assert score_output("The answer is 12.", "addition", "12").correct


def test_join_thinking_round_trips():
    text = join_thinking("step 1\nstep 2", "The answer is 3.")
    p = split_thinking(text)
    assert (p.thinking, p.answer) == ("step 1\nstep 2", "The answer is 3.")
    assert join_thinking(None, "The answer is 3.") == "The answer is 3."


@pytest.mark.parametrize("text,ref,ok", [
    ("The answer is Paris.", "paris", True),
    ("Let me see.\nParis", "Paris", True),
    ("The answer is: **Lyon**", "Paris", False),
    ("", "Paris", False),
])
def test_generic_verifier_for_suites_without_family(text, ref, ok):
    assert GenericAnswer().verify(text, ref) is ok
    assert score_output(f"<think>hmm</think>{text}", None, ref).correct is ok


def test_every_family_oracle_answer_scores_correct_through_eval():
    """The teacher's rows as eval reads them (reasoning joined as <think>, then the answer) are right for
    every built-in family, and the same text with the answer removed is not."""
    import random

    from distill_lab.tasks.base import family_names, get_family

    checked = 0
    for name in family_names():
        fam = get_family(name)
        try:
            problems = fam.generate("test", 3, random.Random(0)) + fam.generate("ood", 2, random.Random(1))
        except ValueError:  # families fed by recipe sources (freeform) have no generator
            continue
        for p in problems:
            if p.reference is None:
                continue
            reasoning, answer = fam.oracle(p, "high")
            s = score_output(join_thinking(reasoning, answer), name, p.reference)
            assert s.correct, (name, p.prompt, answer)
            assert s.score == pytest.approx(1.0) or name == "house_style", (name, s.score)
            assert not score_output(f"<think>\n{reasoning}\n{answer}", name, p.reference).correct, name
            checked += 1
    assert checked >= 10
