"""The rl stage's rewards per task family: a right, a wrong, a truncated and a badly formatted
completion, as token ids the way TRL hands them over, and the same verdict as eval's scoring."""

from __future__ import annotations

import random

import pytest

from distill_lab.stages.evaluate.extract import score_output
from distill_lab.stages.rl.rewards import judge, make_reward_funcs
from distill_lab.students.tiny import build_tiny_tokenizer
from distill_lab.tasks.base import family_names, get_family

TOK = build_tiny_tokenizer()
EOS = TOK.eos_token_id
FAMILIES = [n for n in family_names() if n != "freeform"]  # freeform's prompts come from recipe sources


def problems(name: str, n: int = 12):
    fam = get_family(name)
    for split in ("train", "test"):
        try:
            return fam, fam.generate(split, n, random.Random(0))
        except ValueError:  # a family with held-out problems only
            continue
    raise AssertionError(f"{name}: no problems")


def completion(reasoning: str, answer: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def ids(text: str, *, eos: bool = True) -> list[int]:
    return TOK(text, add_special_tokens=False)["input_ids"] + ([EOS] if eos else [])


def rewards(texts_ids, task, reference):
    logged: dict[str, float] = {}
    correct, fmt = make_reward_funcs(TOK, [EOS])
    n = len(texts_ids)
    kw = dict(prompts=[""] * n, completions=[""] * n, completion_ids=texts_ids, task=[task] * n,
              reference=[reference] * n)
    c = correct(**kw, log_metric=lambda k, v: logged.__setitem__(k, v))
    return c, fmt(**kw), logged


@pytest.mark.parametrize("name", FAMILIES)
def test_right_wrong_truncated_and_badly_formatted(name):
    fam, ps = problems(name)
    p = ps[0]
    reasoning, answer = fam.oracle(p, "low")
    right = completion(reasoning, answer)
    # a wrong answer: another problem's oracle answer that this problem's verifier (eval's scoring) rejects
    wrong = next((completion(reasoning, fam.oracle(q, "low")[1]) for q in ps[1:]
                  if not score_output(completion(reasoning, fam.oracle(q, "low")[1]), name, p.reference).correct), None)
    unclosed = f"<think>\n{reasoning}\n{answer}"  # the thinking never closes: no answer is read
    cases = [ids(right), ids(right, eos=False), ids(unclosed)] + ([ids(wrong)] if wrong else [])
    c, f, logged = rewards(cases, name, p.reference)
    assert c[:3] == [1.0, 0.0, 0.0], (name, right)  # right; the same text cut before its end of turn; unclosed
    assert f[:3] == [1.0, 0.0, 0.0]
    if wrong is not None:
        assert c[3] == 0.0 and f[3] == 1.0  # wrong value, well formed
    # the verdicts agree with eval's on the texts that ended (eval reads the same split and verifier)
    for text in [right, unclosed] + ([wrong] if wrong else []):
        assert judge(text, name, p.reference, truncated=False).correct == score_output(text, name, p.reference).correct
    # per-family reward logged for W&B: weights 1 (correct) and 0 (format) by default here
    assert logged[f"reward_family/{name}/mean"] == pytest.approx(sum(c) / len(c))


def test_families_without_a_wrong_case_are_few():
    """The wrong case above is skipped only where another problem's answer is also right for this one."""
    without = []
    for name in FAMILIES:
        fam, ps = problems(name)
        p = ps[0]
        r = fam.oracle(p, "low")[0]
        if all(score_output(completion(r, fam.oracle(q, "low")[1]), name, p.reference).correct for q in ps[1:]):
            without.append(name)
    assert set(without) <= {"house_style", "style_rules"}, without


def test_an_unreadable_answer_after_closed_thinking_is_a_format_failure():
    c, f, _ = rewards([ids(completion("5 + 7 = 12.", "I am not sure."))], "addition", "12")
    assert (c, f) == ([0.0], [0.0])


def test_reward_is_never_more_lenient_than_eval_where_math_verify_would_be():
    """A freeform row (recipe sources: a reference from an external data set) with the reference 0.5:
    "1/2" has its value (math-verify says equal) but freeform's verify compares the stated answer, so eval
    scores it wrong; the reward's correctness term is 0 too. The right answer gets the full weight."""
    from distill_lab.tasks.verdicts import math_equal

    wrong = completion("half of one", "The answer is 1/2.")
    right = completion("half of one", "The answer is 0.5.")
    assert math_equal("1/2", "0.5")  # the case is real: math-verify would accept it
    assert not score_output(wrong, "freeform", "0.5").correct and score_output(right, "freeform", "0.5").correct
    correct, fmt = make_reward_funcs(TOK, [EOS])
    correct.weights.update(correct=2.0, format=0.25)  # what run.py sets from rl.reward
    logged: dict[str, float] = {}
    n = 2
    kw = dict(prompts=[""] * n, completions=[""] * n, completion_ids=[ids(wrong), ids(right)],
              task=["freeform"] * n, reference=["0.5"] * n)
    assert correct(**kw, log_metric=lambda k, v: logged.__setitem__(k, v)) == [0.0, 1.0]
    assert fmt(**kw) == [1.0, 1.0]  # both well formed: only the correctness term tells them apart
    # weighted reward per completion: 0.25 (format only) and 2.25 (the full correctness weight on top)
    assert logged["reward_family/freeform/mean"] == pytest.approx((0.25 + 2.25) / 2)
    assert logged["reward_family/freeform/std"] == pytest.approx(1.0)


def test_pad_after_the_end_of_turn_is_ignored_and_stop_ids_are_honoured():
    right = ids(completion("5 + 7 = 12.", "The answer is 12.")) + [TOK.pad_token_id] * 3
    c, f, _ = rewards([right], "addition", "12")
    assert (c, f) == ([1.0], [1.0])
    end_think = TOK.convert_tokens_to_ids("</think>")
    correct, _ = make_reward_funcs(TOK, [end_think])  # a stop id that cuts at </think>: no answer left
    assert correct(prompts=[""], completions=[""], completion_ids=[right], task=["addition"], reference=["12"]) == [0.0]
