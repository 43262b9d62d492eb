"""Rewards of the rl stage: the task families' own verifiers, as two separately weighted terms.

- ``correct`` (1/0): the family's ``verify`` on the answer after the thinking, as eval scores it
  (``stages/evaluate/extract.py``: the thinking is everything before the last ``</think>``; an unclosed
  ``<think>`` leaves no answer). For a math-like reference (a number, a fraction, a LaTeX expression),
  ``math-verify`` also accepts the family's extracted answer when it has the reference's value
  (``1/2`` for ``0.5``), so the reward never punishes a right value in another notation.
- ``format`` (1/0): the thinking is closed and the family can read an answer after it.
- A truncated completion (no end of turn within ``rl.max_completion_tokens``) scores 0 on both: its
  answer is never read.

The split into thinking and answer is written here (stages meet only through artifacts, so this stage
does not import eval's); ``tests/test_rl_rewards.py`` checks it gives eval's verdict on each case.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from distill_lab.tasks.base import get_family

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_MATHLIKE = re.compile(r"^\s*\$?\s*-?[\d.,]+(\s*/\s*\d+)?\s*\$?\s*$|\\(frac|sqrt|boxed|pi)")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    formatted: bool
    truncated: bool
    answer: str


def answer_after_thinking(text: str) -> tuple[str, bool]:
    """(answer, thinking closed or absent): the text after the last ``</think>``; none if ``<think>``
    was opened and never closed."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE):].strip(), True
    if THINK_OPEN in text:
        return "", False
    return text.strip(), True


def math_like(reference: str | None) -> bool:
    return bool(reference) and bool(_MATHLIKE.search(reference or ""))


@lru_cache(maxsize=8192)
def _math_equal(extracted: str, reference: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:  # math-verify is in the tasks extra; without it only the family decides
        return False
    try:
        gold, pred = parse(f"${reference}$"), parse(f"${extracted}$")
        return bool(gold and pred and verify(gold, pred))
    except Exception:  # math-verify raises on unparsable text: not equal
        return False


def judge(text: str, task: str | None, reference: str | None, *, truncated: bool) -> Verdict:
    """The verdict on one completion (text without the end-of-turn token)."""
    answer, closed = answer_after_thinking(text)
    if truncated or not answer or not task:
        return Verdict(False, False, truncated, answer)
    fam = get_family(task)
    extracted = fam.extract(answer)
    correct = reference is not None and bool(fam.verify(answer, reference))
    if not correct and extracted is not None and math_like(reference):
        correct = _math_equal(str(extracted), str(reference))
    return Verdict(correct, closed and extracted is not None, False, answer)


def decode_completions(tokenizer: Any, completion_ids: Sequence[Sequence[int]],
                       stop_ids: Sequence[int]) -> list[tuple[str, bool]]:
    """(text, truncated) per completion: decoded up to its first stop token with the special tokens kept
    (``<think>`` is a special token of some students); truncated when no stop token came."""
    out = []
    for ids in completion_ids:
        ids = list(ids)
        at = next((k for k, t in enumerate(ids) if t in stop_ids), None)
        body = ids if at is None else ids[:at]
        pad = tokenizer.pad_token_id
        while body and pad is not None and body[-1] == pad and pad not in stop_ids:
            body.pop()
        out.append((tokenizer.decode(body, skip_special_tokens=False), at is None))
    return out


def make_reward_funcs(tokenizer: Any, stop_ids: Sequence[int]) -> list[Callable[..., list[float]]]:
    """The two reward functions TRL's ``GRPOTrainer`` calls (``reward_weights`` weighs them); the
    correctness term also logs the weighted reward's mean and std per family through ``log_metric``."""
    weights: dict[str, float] = {"correct": 1.0, "format": 0.0}

    def verdicts(completion_ids, task, reference) -> list[Verdict]:
        decoded = decode_completions(tokenizer, completion_ids, stop_ids)
        return [judge(t, k, r, truncated=tr) for (t, tr), k, r in zip(decoded, task, reference, strict=True)]

    def correct(prompts, completions, completion_ids, task, reference, log_metric=None, **_: Any) -> list[float]:
        vs = verdicts(completion_ids, task, reference)
        if log_metric is not None:
            for fam, stats in family_stats(vs, task, weights).items():
                log_metric(f"reward_family/{fam}/mean", stats[0])
                log_metric(f"reward_family/{fam}/std", stats[1])
        return [float(v.correct) for v in vs]

    def format(prompts, completions, completion_ids, task, reference, **_: Any) -> list[float]:  # noqa: A001
        return [float(v.formatted) for v in verdicts(completion_ids, task, reference)]

    correct.weights = weights  # type: ignore[attr-defined]  (run.py sets the configured weights)
    return [correct, format]


def family_stats(vs: Sequence[Verdict], tasks: Sequence[str | None],
                 weights: dict[str, float]) -> dict[str, tuple[float, float]]:
    """(mean, population std) of the weighted reward per family."""
    by: dict[str, list[float]] = {}
    for v, t in zip(vs, tasks, strict=True):
        by.setdefault(t or "generic", []).append(weights["correct"] * v.correct + weights["format"] * v.formatted)
    out = {}
    for fam, xs in by.items():
        m = sum(xs) / len(xs)
        out[fam] = (m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs)))
    return out
