"""Split a model output into thinking and answer, then extract and verify the final answer.

The thinking is always removed before extraction, so an answer that appears only inside the thinking
does not count, and neither does anything in an unclosed ``<think>`` block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ParsedOutput:
    thinking: str  # text of the thinking, tags removed ("" when there is none)
    answer: str  # what follows the thinking ("" when the thinking never closed)
    think_opened: bool  # a <think> or </think> tag is present
    think_unclosed: bool  # a <think> was opened and never closed (a runaway or broken format)


def split_thinking(text: str) -> ParsedOutput:
    """Thinking = everything before the last ``</think>``; answer = everything after it.

    ``<think>`` without a closing tag makes the rest thinking and the answer empty. Text with no tag at
    all is all answer. (Templates that prefill ``<think>`` leave only ``</think>`` in the output; that
    is handled by the first rule.)
    """
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        thinking = text[:close].replace(THINK_OPEN, "").replace(THINK_CLOSE, "")
        return ParsedOutput(thinking.strip(), text[close + len(THINK_CLOSE):].strip(), True, False)
    open_ = text.find(THINK_OPEN)
    if open_ >= 0:
        return ParsedOutput(text[open_ + len(THINK_OPEN):].strip(), "", True, True)
    return ParsedOutput("", text.strip(), False, False)


def join_thinking(reasoning: str | None, content: str) -> str:
    """The inverse of ``split_thinking`` for a row's assistant turn (reasoning_content + content)."""
    if reasoning:
        return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{content}"
    return content


_NORM = re.compile(r"[\s\.\,\;\:\!\?\"'`\*]+")
_ANSWER_IS = re.compile(r"answer is\s*[:*]*\s*(.+)", re.I)


def _normalize(s: str) -> str:
    return _NORM.sub(" ", s).strip().lower()


class GenericAnswer:
    """Verifier for external prompts without a task family: free-form answers.

    Extraction: the text after the last "answer is", else the last non-empty line. Verification:
    ``math_verify`` when it is installed and parses both sides, else normalized string equality.
    """

    name = "generic"

    def extract(self, text: str) -> str | None:
        hits = _ANSWER_IS.findall(text)
        if hits:
            return hits[-1].strip() or None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1] if lines else None

    def score(self, text: str, reference: str | None, teacher_text: str | None = None) -> float:
        return float(self.verify(text, reference))

    def verify(self, text: str, reference: str | None) -> bool:
        got = self.extract(text)
        if got is None or reference is None:
            return False
        if _normalize(got) == _normalize(reference):
            return True
        return _math_equal(got, reference)


def _math_equal(got: str, reference: str) -> bool:
    try:
        import math_verify  # optional: free-form math answers
    except ImportError:
        return False
    try:
        gold, pred = math_verify.parse(reference), math_verify.parse(got)
        return bool(gold and pred and math_verify.verify(gold, pred))
    except Exception:  # math_verify raises on unparsable input; that is "not equal"
        return False


@cache
def verifier_for(task: str | None) -> Any:
    """The task family named ``task`` (its ``extract``/``verify``), or ``GenericAnswer`` for None."""
    if not task:
        return GenericAnswer()
    from distill_lab.tasks.base import get_family

    return get_family(task)


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
    parsed = split_thinking(text)
    if truncated:
        return Scored(parsed, None, False, 0.0)
    fam = verifier_for(task)
    extracted = fam.extract(parsed.answer) if parsed.answer else None
    correct = bool(parsed.answer) and reference is not None and bool(fam.verify(parsed.answer, reference))
    score = float(correct)
    if parsed.answer and hasattr(fam, "score"):
        score = float(fam.score(parsed.answer, reference, teacher_text))
    return Scored(parsed, extracted, correct, score)
