"""Split a model output into thinking and answer, then extract and verify the final answer.

The thinking is always removed before extraction, so an answer that appears only inside the thinking
does not count, and neither does anything in an unclosed ``<think>`` block. The split and the verdict
(``correct``) are ``tasks/verdicts.py``'s, the same the rl stage's reward uses; eval adds the family's
graded ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass

# the split, the verifiers and the verdict are shared with the rl stage's reward (tasks/verdicts.py)
from distill_lab.tasks.verdicts import (  # noqa: F401  (re-exported: eval's modules import them from here)
    THINK_CLOSE,
    THINK_OPEN,
    GenericAnswer,
    ParsedOutput,
    split_thinking,
    verdict,
    verifier_for,
)


def join_thinking(reasoning: str | None, content: str) -> str:
    """The inverse of ``split_thinking`` for a row's assistant turn (reasoning_content + content)."""
    if reasoning:
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content}"
    return content


@dataclass(frozen=True)
class Scored:
    parsed: ParsedOutput
    extracted: str | None
    correct: bool
    score: float  # the family's graded score in [0, 1] (1.0/0.0 = correct/wrong where it has none)


def score_output(text: str, task: str | None, reference: str | None, teacher_text: str | None = None, *,
                 truncated: bool = False) -> Scored:
    """Strip the thinking, extract the final answer with the family's extractor, verify it.

    ``teacher_text`` (the teacher's answer to the same prompt, thinking stripped) goes to families
    whose ``score`` compares with the teacher (the house style family scores style features).
    A ``truncated`` output (the token budget ended it before end of turn) is wrong and never parsed: a
    sum cut mid-number would otherwise read as a wrong number (or a right prefix).
    """
    v = verdict(text, task, reference, truncated=truncated)
    if truncated:
        return Scored(v.parsed, None, False, 0.0)
    score = float(v.correct)
    fam = verifier_for(task)
    if v.parsed.answer and hasattr(fam, "score"):
        score = float(fam.score(v.parsed.answer, reference, teacher_text))
    return Scored(v.parsed, v.extracted, v.correct, score)
