"""The one verdict shared by eval's scoring and the rl reward (tasks/verdicts.py): math-verify's value
equality on a table of answers (the same verdict whether a side comes wrapped in ``$...$`` or bare),
and a missing math-verify is an error that names it, never a silent "not equal"."""

from __future__ import annotations

import sys
import threading

import pytest

from distill_lab.stages.evaluate.extract import score_output
from distill_lab.stages.rl.rewards import judge
from distill_lab.tasks.verdicts import GenericAnswer, MathVerifyMissing, math_equal, verdict

# (answer, reference, same value?)
TABLE = [
    ("1/2", "0.5", True),
    ("\\frac{1}{2}", "0.5", True),
    ("1/2", "\\frac{1}{2}", True),
    ("1,234", "1234", True),
    ("x=3", "3", True),
    ("12.0", "12", True),
    ("\\sqrt{4}", "2", True),  # LaTeX without delimiters: read as one expression
    ("2x", "x*2", True),
    ("3 apples", "3", True),  # words: free text, its last expression
    ("7", "3", False),  # a wrong answer
    ("1/3", "0.5", False),
    ("Paris", "pairs", False),  # words are never a product of symbols (inside $...$ they would be equal)
    ("3, 4", "4", False),
    ("1/2.", "0.5", True),  # the sentence's full stop is not part of the value ($1/2.$ would read as 1)
    ("**\\frac{1}{2}**", "0.5", True),
]


@pytest.mark.parametrize("got,ref,same", TABLE)
def test_math_equal_on_a_table_wrapped_or_bare(got, ref, same):
    assert math_equal(got, ref) is same
    assert math_equal(f"${got}$", ref) is same
    assert math_equal(got, f"${ref}$") is same
    assert math_equal(f"${got}$", f"${ref}$") is same


def test_math_equal_works_off_the_main_thread():
    """math-verify's timeout uses signal.alarm, which raises outside the main thread; the verdict there
    must still be the value's, not an error read as "not equal"."""
    out: list[bool] = []
    t = threading.Thread(target=lambda: out.extend([math_equal("1/2", "0.5"), math_equal("7", "3")]))
    t.start()
    t.join()
    assert out == [True, False]


def test_generic_rows_use_math_verify_and_rl_gives_eval_verdict():
    text = "<think>half</think>\nThe answer is \\frac{1}{2}."
    assert GenericAnswer().verify("The answer is \\frac{1}{2}.", "0.5")
    assert verdict(text, None, "0.5").correct and score_output(text, None, "0.5").correct
    assert judge(text, None, "0.5", truncated=False).correct
    assert not verdict(text, None, "0.5", truncated=True).correct


@pytest.fixture
def no_math_verify(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # `import math_verify` raises ImportError


def test_missing_math_verify_is_a_clear_error(no_math_verify):
    with pytest.raises(MathVerifyMissing, match=r"math-verify cannot be imported.*pip install 'math-verify"):
        math_equal("1/2", "0.5")
    with pytest.raises(MathVerifyMissing):  # a verdict that needs it fails; it never reads as wrong
        score_output("<think>x</think>The answer is 1/2.", None, "0.5")
    with pytest.raises(MathVerifyMissing):  # a cached verdict does not hide it either
        math_equal("1/2", "0.5")


def test_what_does_not_need_math_verify_runs_without_it(no_math_verify):
    # a generic answer equal as text is decided before math-verify; a family row never asks it
    assert score_output("<think>x</think>The answer is Paris.", None, "paris").correct
    assert judge("<think>x</think>The answer is 12.", "addition", "12", truncated=False).correct
    assert not judge("<think>x</think>The answer is 1/2.", "freeform", "0.5", truncated=False).correct
