"""The verdict on one model output, shared by eval's scoring and the rl stage's reward so both give the
same answer on the same row.

- ``split_thinking``: the thinking is everything before the last ``</think>``, the answer what follows;
  an unclosed ``<think>`` leaves no answer.
- ``verifier_for(task)``: the task family's ``extract``/``verify`` for a row with a family;
  ``GenericAnswer`` for a row without one (external prompts).
- ``math_equal``: value equality by ``math-verify`` (``1/2`` = ``0.5`` = ``\\frac{1}{2}``). Only
  ``GenericAnswer`` uses it: a family's own ``verify`` is the whole verdict for a row with a family.
  math-verify is a dependency of distill_lab; if it cannot be imported, ``math_equal`` raises
  ``MathVerifyMissing`` (never a silent "not equal").
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from distill_lab.tasks.base import get_family

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
MATH_TIMEOUT_S = 5


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


# ------------------------------------------------------------------------------- math-verify
class MathVerifyMissing(ImportError):
    """math-verify (a dependency of distill_lab) cannot be imported."""


def require_math_verify() -> Any:
    """The math_verify module, or ``MathVerifyMissing`` saying how to install it (a stage can call this
    before it generates anything, so a broken install fails fast)."""
    try:
        import math_verify
    except ImportError as e:
        raise MathVerifyMissing(
            "math-verify cannot be imported: answers of rows without a task family are compared by value "
            "with it (a dependency of distill_lab): pip install 'math-verify[antlr4_9_3]>=0.9,<0.10' "
            f"({e})") from e
    return math_verify


def _timeout() -> int | None:
    """math-verify's timeout where ``signal.alarm`` works (the main thread), else None (off): elsewhere
    its alarm would raise, and that error would read as "not equal"."""
    return MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


# A word: two or more letters not part of a LaTeX command (``\frac``). Written here because math-verify
# reads one text either as an expression in ``$...$`` or as free text to extract from, and neither
# suits every answer: inside ``$...$`` a word is a product of symbols ("Paris" = "pairs"); as free text
# ``\sqrt{4}``, ``2x`` and ``{1,2}`` are not parsed at all.
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_DOLLARS = re.compile(r"^\$+(.*?)\$+$", re.S)


def _trim(text: str) -> str:
    """Without the sentence around it: markdown bold and a closing full stop (``$1/2.$`` parses as 1)."""
    return text.strip().strip("*").strip().rstrip(".;:!?,").strip()


def _parse(mv: Any, text: str) -> list:
    """math-verify's parse of one side: a text without words as one expression (``$...$``; a text already
    wrapped in ``$`` reads the same as the bare one), a text with words as free text (its last expression:
    "3 apples" is 3). An expression math-verify cannot read is read again as free text."""
    bare = _trim(text)
    inner = _trim(m.group(1)) if (m := _DOLLARS.match(bare)) else bare
    t = _timeout()
    if _WORD.search(inner):
        return mv.parse(inner, parsing_timeout=t)
    return mv.parse(f"${inner}$", parsing_timeout=t) or mv.parse(inner, parsing_timeout=t)


@lru_cache(maxsize=8192)
def _equal(got: str, reference: str) -> bool:
    mv = require_math_verify()
    try:
        gold, pred = _parse(mv, reference), _parse(mv, got)
        return bool(gold and pred and mv.verify(gold, pred, timeout_seconds=_timeout()))
    except Exception:  # math-verify's own errors on text it cannot read (a timeout included): not equal
        return False


def math_equal(got: str, reference: str) -> bool:
    """Whether ``got`` has the value of ``reference`` by math-verify (symbolic, so ``1/2``, ``0.5``,
    ``\\frac{1}{2}`` and ``$\\frac{1}{2}$`` agree; ``1,234`` is 1234; ``x=3`` answers 3). Raises
    ``MathVerifyMissing`` when math-verify cannot be imported."""
    require_math_verify()  # checked on every call (cheap once imported): a cached verdict never hides its absence
    return _equal(got, reference)


# ------------------------------------------------------------------------------- verifiers
_NORM = re.compile(r"[\s\.\,\;\:\!\?\"'`\*]+")
_ANSWER_IS = re.compile(r"answer is\s*[:*]*\s*(.+)", re.I)


def _normalize(s: str) -> str:
    return _NORM.sub(" ", s).strip().lower()


class GenericAnswer:
    """Verifier for external prompts without a task family: free-form answers.

    Extraction: the text after the last "answer is", else the last non-empty line. Verification:
    normalized string equality, else value equality by ``math_equal`` (math-verify).
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
        return math_equal(got, reference)


@cache
def verifier_for(task: str | None) -> Any:
    """The task family named ``task`` (its ``extract``/``verify``), or ``GenericAnswer`` for None."""
    return get_family(task) if task else GenericAnswer()


@dataclass(frozen=True)
class Verdict:
    parsed: ParsedOutput
    extracted: str | None  # the verifier's reading of the answer (None: nothing it can read)
    correct: bool


def verdict(text: str, task: str | None, reference: str | None, *, truncated: bool = False) -> Verdict:
    """Strip the thinking, extract the final answer with the row's verifier, verify it against
    ``reference``. A ``truncated`` output (cut before its end of turn) is wrong and never read: a sum cut
    mid-number would otherwise read as a wrong number (or a right prefix)."""
    parsed = split_thinking(text)
    if truncated or not parsed.answer:
        return Verdict(parsed, None, False)
    fam = verifier_for(task)
    extracted = fam.extract(parsed.answer)
    correct = reference is not None and bool(fam.verify(parsed.answer, reference))
    return Verdict(parsed, extracted, correct)
