"""Format probes whose scores keep format compliance and content correctness apart.

``json_record`` and ``answer_line`` (``formats.py``) count an answer right only when it is both in the
asked format and correct, so a student that learnt the format but not the content and one that knows
the content but not the format score the same. ``json_fields`` and ``sorted_words`` ask the same prompts
(same generator, references and oracle) and give evaluation three numbers per block:

- format compliance: ``extract`` is strict (inherited): it returns the answer only when the whole
  answer is in the asked format, so eval's ``format.answer_parsed`` is the share of compliant answers;
- content correctness: ``score`` checks the content wherever and however it is written (the asked
  values in any JSON object or ``key: value`` pair; the words in sorted order on any line), so the
  block's ``score`` is the share with the right content, whatever the format;
- both: ``verify`` (inherited), the block's ``accuracy``.

The old families stay as they were, so earlier results keep their meaning.
"""

from __future__ import annotations

import json
import re
from typing import Any

from distill_lab.tasks.base import register
from distill_lab.tasks.formats import AnswerLine, JsonRecord


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that parses somewhere in ``text`` (prose and fences around it allowed)."""
    dec = json.JSONDecoder()
    out = []
    for i, ch in enumerate(text):
        if ch != "{":
            continue
        try:
            obj, _ = dec.raw_decode(text[i:])
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _same(value: Any, expected: Any) -> bool:
    return str(value).strip().strip("\"'").lower() == str(expected).lower()


def json_content_ok(text: str, reference: str | None) -> bool:
    """Whether the asked values are stated right: in one JSON object (extra keys and text allowed), or
    as ``key: value`` / ``key = value`` pairs anywhere."""
    if reference is None:
        return False
    want: dict[str, Any] = json.loads(reference)
    for obj in json_objects(text):
        if all(k in obj and _same(obj[k], v) for k, v in want.items()):
            return True
    for k, v in want.items():
        m = re.findall(rf"[\"']?\b{re.escape(k)}\b[\"']?\s*[:=]\s*[\"']?([^\"',\n}}]+)", text, re.I)
        if not m or not _same(m[-1], v):
            return False
    return True


@register
class JsonFields(JsonRecord):
    name = "json_fields"

    def score(self, text: str, reference: str | None, teacher_text: str | None = None) -> float:
        """Content correctness, whatever the format (``format.answer_parsed`` gives the format)."""
        return float(json_content_ok(text, reference))


_WORD = re.compile(r"[A-Za-z]+")


def sorted_words_ok(text: str, reference: str | None) -> bool:
    """Whether some line lists exactly the reference's words, in sorted order (any separators, any
    text before them)."""
    if not reference:
        return False
    want = [w.strip().lower() for w in reference.split(",")]
    wanted = set(want)
    for line in reversed(text.splitlines()):
        found = [w.lower() for w in _WORD.findall(line) if w.lower() in wanted]
        if found == want:
            return True
    return False


@register
class SortedWords(AnswerLine):
    name = "sorted_words"

    def score(self, text: str, reference: str | None, teacher_text: str | None = None) -> float:
        """Content correctness, whatever the format (``format.answer_parsed`` gives the format)."""
        return float(sorted_words_ok(text, reference))
