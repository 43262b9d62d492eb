"""Rewards of the rl stage: the task families' own verifiers, as two separately weighted terms.

- ``correct`` (1/0): eval's verdict on the row, exactly (``tasks/verdicts.verdict``, which eval's
  ``score_output`` also calls): the thinking is everything before the last ``</think>`` (an unclosed
  ``<think>`` leaves no answer), and the answer after it is checked by the row's family ``verify``
  alone. The reward is never more lenient than the metric it is meant to move: an answer the family
  rejects scores 0 even when math-verify finds it has the reference's value (``1/2`` for ``0.5``).
  (A row without a family would get eval's generic verifier; the stage skips such rows, ``prompts.py``.)
- ``format`` (1/0): the thinking is closed and the row's verifier can read an answer after it.
- A truncated completion (no end of turn within ``rl.max_completion_tokens``) scores 0 on both: its
  answer is never read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distill_lab.tasks.verdicts import verdict


@dataclass(frozen=True)
class Verdict:
    correct: bool
    formatted: bool
    truncated: bool
    answer: str


def judge(text: str, task: str | None, reference: str | None, *, truncated: bool) -> Verdict:
    """The verdict on one completion (text without the end-of-turn token): eval's, plus the format term."""
    v = verdict(text, task, reference, truncated=truncated)
    closed = not v.parsed.think_unclosed
    formatted = not truncated and closed and v.extracted is not None
    return Verdict(v.correct, formatted, truncated, v.parsed.answer)


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
