"""The public benchmarks: each one's hub schema, mapped to the items the eval asks and grades.

One ``Spec`` per suite: the columns its rows must have (the hub dataset's own names) and ``to_item``,
which turns a row into a ``BenchItem`` (the question text, the gold answer, the grader's extras). The
hub id, split, prompt template and token budget live in ``conf/eval/suite/<name>.yaml``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LETTERS = "ABCDEFGHIJ"


@dataclass
class BenchItem:
    id: str
    question: str  # the problem text, before the prompt template
    reference: str  # the gold answer (math: a LaTeX/number string; choice: the letter; ifeval: "")
    choices: list[str] = field(default_factory=list)  # choice: the options in the order shown (A, B, ...)
    extra: dict[str, Any] = field(default_factory=dict)  # ifeval: instruction_id_list, kwargs


@dataclass(frozen=True)
class Spec:
    name: str
    columns: tuple[str, ...]  # columns every row must have
    to_item: Callable[[dict[str, Any], int, int], BenchItem]  # (row, index, choice_seed) -> item
    id_column: str | None = None


def _text(row: dict[str, Any], col: str) -> str:
    v = row[col]
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"column {col!r} must be a non-empty string, got {v!r}")
    return v.strip()


def _answer_text(row: dict[str, Any], col: str) -> str:
    v = row[col]
    if isinstance(v, bool) or v is None or (isinstance(v, str) and not v.strip()):
        raise ValueError(f"column {col!r} must be a non-empty answer, got {v!r}")
    return str(v).strip()


_GSM8K_GOLD = re.compile(r"####\s*(.+?)\s*$", re.S)


def gsm8k_item(row: dict[str, Any], i: int, _seed: int) -> BenchItem:
    """openai/gsm8k (main): ``question``, ``answer`` = worked solution ending in ``#### <number>``."""
    m = _GSM8K_GOLD.search(_text(row, "answer"))
    if not m:
        raise ValueError("column 'answer' has no '#### <final answer>' line (the GSM8K format)")
    return BenchItem(id=f"gsm8k-{i}", question=_text(row, "question"), reference=m.group(1).replace(",", ""))


def math500_item(row: dict[str, Any], i: int, _seed: int) -> BenchItem:
    """HuggingFaceH4/MATH-500: ``problem``, ``answer`` (LaTeX), ``solution``, ``subject``, ``level``, ``unique_id``."""
    uid = row.get("unique_id")
    return BenchItem(id=str(uid) if uid else f"math500-{i}", question=_text(row, "problem"),
                     reference=_answer_text(row, "answer"),
                     extra={k: row[k] for k in ("subject", "level") if k in row})


def aime_item(prefix: str) -> Callable[[dict[str, Any], int, int], BenchItem]:
    """HuggingFaceH4/aime_2024 and yentinglin/aime_2025: ``problem``, ``answer`` (an integer 0-999),
    ``id``; other columns (``solution``, ``url``, ``year``) are ignored."""
    def item(row: dict[str, Any], i: int, _seed: int) -> BenchItem:
        rid = row.get("id")
        return BenchItem(id=f"{prefix}-{rid if rid not in (None, '') else i}", question=_text(row, "problem"),
                         reference=_answer_text(row, "answer"))
    return item


GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def gpqa_item(row: dict[str, Any], i: int, seed: int) -> BenchItem:
    """Idavidrein/gpqa (gpqa_diamond): ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``,
    ``Record ID``. The four options are shuffled per question by (seed, record id), so the gold letter is
    not always A and the order is the same on every run and backend."""
    options = [_text(row, c) for c in GPQA_COLUMNS[1:]]
    rid = str(row.get("Record ID") or i)
    order = list(range(4))
    random.Random(f"{seed}:{rid}").shuffle(order)
    shown = [options[j] for j in order]
    gold = LETTERS[order.index(0)]
    return BenchItem(id=f"gpqa-{rid}", question=_text(row, "Question"), reference=gold, choices=shown,
                     extra={k: row[k] for k in ("High-level domain", "Subdomain") if k in row})


def ifeval_item(row: dict[str, Any], i: int, _seed: int) -> BenchItem:
    """google/IFEval: ``key``, ``prompt``, ``instruction_id_list``, ``kwargs`` (one dict per instruction)."""
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    if not isinstance(ids, list) or not ids or not all(isinstance(x, str) for x in ids):
        raise ValueError(f"column 'instruction_id_list' must be a non-empty list of strings, got {ids!r}")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise ValueError("column 'kwargs' must be a list of one dict per instruction "
                         f"({len(ids)} instructions, got {kwargs!r})")
    return BenchItem(id=f"ifeval-{row.get('key', i)}", question=_text(row, "prompt"), reference="",
                     extra={"instruction_id_list": ids, "kwargs": kwargs})


SPECS: dict[str, Spec] = {
    "gsm8k": Spec("gsm8k", ("question", "answer"), gsm8k_item),
    "math500": Spec("math500", ("problem", "answer"), math500_item),
    "aime24": Spec("aime24", ("problem", "answer"), aime_item("aime24")),
    "aime25": Spec("aime25", ("problem", "answer"), aime_item("aime25")),
    "gpqa_diamond": Spec("gpqa_diamond", GPQA_COLUMNS, gpqa_item),
    "ifeval": Spec("ifeval", ("key", "prompt", "instruction_id_list", "kwargs"), ifeval_item),
}
