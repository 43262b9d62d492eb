"""Graders of the public benchmarks, applied to the answer after the thinking (never inside it).

- ``math``: ``math-verify`` parses the gold answer and the prediction (``\\boxed{}`` first, then any
  LaTeX or plain expression) and compares them symbolically, so ``\\frac{1}{2}``, ``0.5`` and ``1/2``
  are equal. Its timeouts use ``signal.alarm``, valid only in the main thread: elsewhere they are off.
- ``choice``: the answer letter (see ``extract_letter``).
- ``ifeval``: lm-eval's IFEval checkers (``lm_eval.tasks.ifeval``), strict and loose, unchanged.

A truncated output (cut by the token budget) is graded wrong before any of these run.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from distill_lab.stages.evaluate.suites.specs import LETTERS, BenchItem

MATH_TIMEOUT_S = 5


@dataclass
class Grade:
    extracted: str | None  # what the grader read as the final answer (None: nothing parsable)
    correct: bool
    detail: dict[str, Any] = field(default_factory=dict)  # ifeval: per-instruction results, loose verdict


def _timeout() -> int | None:
    """math-verify's timeout where ``signal.alarm`` works (the main thread), else None (off)."""
    return MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> tuple:
    from math_verify import parse

    t = _timeout()
    got = parse(gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$", parsing_timeout=t)
    return tuple(got or parse(gold, parsing_timeout=t))


def _parse_pred(text: str) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    cfg = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return parse(text, extraction_config=cfg, parsing_timeout=_timeout())


def grade_math(answer: str, gold: str) -> Grade:
    from math_verify import verify

    pred = _parse_pred(answer) if answer.strip() else []
    extracted = str(pred[-1]) if pred else None
    gold_p = list(_parse_gold(gold))
    ok = bool(pred and gold_p and verify(gold_p, pred, timeout_seconds=_timeout()))
    return Grade(extracted, ok)


def math_equal(a: str, b: str) -> bool:
    """Two extracted answers are the same value (for majority voting across samples)."""
    from math_verify import verify

    if a == b:
        return True
    pa, pb = list(_parse_gold(a)), list(_parse_gold(b))
    return bool(pa and pb and verify(pa, pb, timeout_seconds=_timeout()))


# Patterns in order of trust; within one pattern the last match wins (a model restates, then concludes).
_LETTER_PATTERNS = [
    re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-J])\)?\s*\}?\s*\}"),
    re.compile(r"(?i:answer)\s*(?:is|:)?\s*[:：]?\s*(?i:option|choice)?\s*[\*_]*\s*[\(\[\$]?\s*([A-J])\b"),
    re.compile(r"(?:^|\n)\s*[\*_]*\(?([A-J])\)?[\*_]*\s*[\.\)]?\s*$"),
    re.compile(r"\(([A-J])\)"),
]


def extract_letter(answer: str, n_choices: int = 4) -> str | None:
    """The chosen option letter in ``answer`` (the text after the thinking).

    Written here because no maintained package that installs beside this project does it robustly:
    math-verify's ``StringExtractionConfig`` (measured, 0.9) misses ``(B)``, ``\\boxed{D}`` and
    ``Answer: $C$``, and lighteval's letter extractor cannot be installed with math-verify 0.9 (its
    ``latex2sympy2_extended`` pin conflicts). Order: ``\\boxed{X}``, "answer is/: X" ("answer" in any case,
    the letter a capital; the simple-evals format ``Answer: X``), a line that is only the letter, a final ``(X)``. Letters
    beyond ``n_choices`` are ignored.
    """
    valid = LETTERS[:n_choices]
    for pat in _LETTER_PATTERNS:
        hits = [m for m in pat.findall(answer) if m in valid]
        if hits:
            return hits[-1]
    return None


def grade_choice(answer: str, gold: str, n_choices: int) -> Grade:
    got = extract_letter(answer, n_choices)
    return Grade(got, got is not None and got == gold)


def grade_ifeval(answer: str, item: BenchItem) -> Grade:
    """lm-eval's strict check decides ``correct`` (prompt-level strict accuracy, as IFEval reports);
    the loose check and the per-instruction results go to ``detail``."""
    from lm_eval.tasks.ifeval.utils import (
        InputExample,
        test_instruction_following_loose,
        test_instruction_following_strict,
    )

    inp = InputExample(key=0, instruction_id_list=item.extra["instruction_id_list"], prompt=item.question,
                       kwargs=item.extra["kwargs"])
    strict = test_instruction_following_strict(inp, answer)
    loose = test_instruction_following_loose(inp, answer)
    return Grade(None, bool(strict.follow_all_instructions),
                 {"strict": list(strict.follow_instruction_list), "loose": list(loose.follow_instruction_list),
                  "loose_all": bool(loose.follow_all_instructions)})


def check_ifeval_ready(items: list[BenchItem]) -> None:
    """Fail before any generation when an instruction's checker cannot run here (an unknown instruction
    id, or NLTK data it needs, e.g. ``punkt_tab`` for sentence counts, is missing)."""
    try:
        from lm_eval.tasks.ifeval import instructions_registry
    except ImportError as e:
        raise RuntimeError("eval/suite=ifeval needs lm-eval's IFEval checkers: pip install 'distill_lab[bench]' "
                           f"({e})") from None
    first: dict[str, BenchItem] = {}
    for it in items:
        for iid in it.extra["instruction_id_list"]:
            if iid not in instructions_registry.INSTRUCTION_DICT:
                raise ValueError(f"eval.suite: item {it.id}: unknown IFEval instruction {iid!r}")
            first.setdefault(iid, it)
    for iid, it in first.items():
        j = it.extra["instruction_id_list"].index(iid)
        one = BenchItem(it.id, it.question, "", extra={"instruction_id_list": [iid], "kwargs": [it.extra["kwargs"][j]]})
        try:
            grade_ifeval("A short answer. It has two sentences.", one)
        except LookupError as e:
            raise RuntimeError(f"eval.suite: IFEval instruction {iid!r} (item {it.id}) needs NLTK data that is "
                               f"not installed here; run `python -m nltk.downloader punkt_tab punkt` once. ({e})".replace("\n", " ")) from None


def grade(grader: str, answer: str, item: BenchItem) -> Grade:
    if grader == "math":
        return grade_math(answer, item.reference)
    if grader == "choice":
        return grade_choice(answer, item.reference, len(item.choices))
    if grader == "ifeval":
        return grade_ifeval(answer, item)
    raise ValueError(f"unknown grader {grader!r}")
