"""Generation budgets checked against the teacher: how many tokens the student needs to write the
teacher's own answers, per split.

The teacher's answer to a held-out prompt (its dataset row's assistant turn: reasoning and answer) is
rendered exactly as the student is trained to produce it, through the student's chat template
(``students/chat.tokenize_conversation``: the assistant span, thinking included, end-of-turn token
included, anything the template pre-fills before generation excluded), and counted in the student's
tokens. That count is what generation must allow for a perfect student to finish the answer.

``eval.max_new_tokens``:
- ``auto`` (default): per split, ``ceil(longest teacher answer x eval.budget_margin)``;
- a number: used on every split, and refused (``ConfigError``, before any model is loaded or any
  generation) where it is below the teacher's longest answer on an evaluated split, unless
  ``eval.allow_truncation=true`` (the run goes on; metrics and reports flag the split in red).

A split whose evaluated prompts carry no teacher answer (an external suite without ``teacher_answer``
and without ``eval.teacher_live``) cannot be checked: with ``auto`` it gets
``eval.fallback_max_new_tokens`` and with a number that number; either way its budget is recorded as
``source: "no teacher answers"`` (unchecked) and the log says so. Benchmark suites (``eval/suite=...``)
keep their published budgets (``eval.suite.max_new_tokens``) and do not pass through here.

A teacher answer the teacher's API cut at its own output limit (the row's ``truncated``: Anthropic's
``stop_reason`` ``max_tokens``, OpenAI's ``finish_reason`` ``length``) is not the teacher's whole answer: its
length is a lower bound. A split holding one is refused (``ConfigError`` naming the split, the count and a
prompt), with ``auto`` as with a number, unless ``eval.allow_truncation=true``: then the budget counts the cut
answers as they are, records how many (``teacher_truncated``) and is flagged as cutting the teacher
(``below_teacher``), so reports mark the split in red.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from distill_lab.artifacts.rows import cut_by_api
from distill_lab.errors import ConfigError


@dataclass(frozen=True)
class TeacherAnswer:
    split: str
    prompt_id: str
    messages: list[dict[str, Any]]  # the conversation up to the answer, then the assistant turn
    truncated: bool = False  # the teacher's API cut this answer at its output limit (a lower bound)


@dataclass
class SplitBudget:
    split: str
    max_new_tokens: int
    source: str  # auto | explicit | no teacher answers
    teacher_longest: int | None  # student tokens of the teacher's longest answer (end of turn included)
    teacher_longest_prompt: str | None  # its prompt_id
    teacher_answers: int  # teacher answers measured on this split
    margin: float | None  # auto's margin (None for an explicit budget)
    below_teacher: bool  # the budget cuts at least one of the teacher's own answers
    teacher_cut_share: float | None  # share of the teacher's answers longer than the budget
    teacher_truncated: int = 0  # teacher answers the teacher's own API cut (their lengths are lower bounds)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.teacher_longest is None:
            return f"{self.split}: {self.max_new_tokens} ({self.source}: unchecked)"
        how = (f"auto = ceil({self.teacher_longest} x {self.margin})" if self.source == "auto"
               else f"explicit; teacher's longest {self.teacher_longest}")
        flag = (f", CUTS {round((self.teacher_cut_share or 0) * self.teacher_answers)} of the teacher's answers"
                if self.below_teacher and not self.teacher_truncated else "")
        if self.teacher_truncated:
            flag += (f", {self.teacher_truncated} teacher answers were cut by the teacher's API: the budget may cut "
                     "the teacher's whole answers")
        return f"{self.split}: {self.max_new_tokens} ({how}, {self.teacher_answers} answers{flag})"


def answer_tokens(tokenizer: Any, messages: list[dict[str, Any]], where: str = "row") -> int:
    """Student tokens of the final assistant turn as the student would generate it (end of turn included)."""
    from distill_lab.students.chat import tokenize_conversation

    return tokenize_conversation(tokenizer, messages, where=where).num_supervised


def answers_from_rows(rows: Iterable[dict[str, Any]], splits: list[str],
                      max_prompts: int | None = None) -> list[TeacherAnswer]:
    """The teacher's answers in dataset rows on the prompts the eval stage evaluates: rows of ``splits``,
    the first ``max_prompts`` distinct prompts per split in file order (as ``evaluate/prompts.load_heldout``)."""
    kept: dict[str, str] = {}
    per_split: dict[str, int] = {}
    out = []
    for r in rows:
        split, pid, msgs = r.get("split"), r.get("prompt_id"), r.get("messages")
        if split not in splits or not pid or not isinstance(msgs, list) or not msgs:
            continue
        if pid not in kept:
            if max_prompts is not None and per_split.get(split, 0) >= max_prompts:
                continue
            per_split[split] = per_split.get(split, 0) + 1
            kept[pid] = split
        if msgs[-1].get("role") == "assistant":
            out.append(TeacherAnswer(split, pid, msgs, truncated=cut_by_api(r)))
    return out


def cut_answers(answers: Iterable[TeacherAnswer]) -> dict[str, list[str]]:
    """``{split: [prompt_id of each answer the teacher's API cut, ...]}`` (splits without one left out)."""
    out: dict[str, list[str]] = {}
    for a in answers:
        if a.truncated:
            out.setdefault(a.split, []).append(a.prompt_id)
    return out


def teacher_lengths(tokenizer: Any, answers: Iterable[TeacherAnswer]) -> dict[str, list[tuple[str, int]]]:
    """``{split: [(prompt_id, student tokens of the teacher's answer), ...]}``."""
    out: dict[str, list[tuple[str, int]]] = {}
    for a in answers:
        n = answer_tokens(tokenizer, a.messages, where=f"teacher answer {a.prompt_id} ({a.split})")
        out.setdefault(a.split, []).append((a.prompt_id, n))
    return out


def resolve_budgets(max_new_tokens: Any, splits: Iterable[str], lengths: dict[str, list[tuple[str, int]]], *,
                    margin: float, allow_truncation: bool, fallback: int,
                    field: str = "eval.max_new_tokens",
                    cut: dict[str, list[str]] | None = None) -> dict[str, SplitBudget]:
    """The budget of every evaluated split; ``ConfigError`` naming the split, both numbers and ``field``
    when an explicit budget is below the teacher's longest answer and truncation is not allowed, and naming
    the split and its cut answers when ``cut`` (``cut_answers``) holds teacher answers the API cut."""
    auto = max_new_tokens == "auto"
    splits = list(splits)
    cut = {s: ids for s, ids in (cut or {}).items() if ids and s in splits}
    if cut and not allow_truncation:
        parts = "; ".join(f"split {s!r}: {len(ids)} of its {len(lengths.get(s) or [])} answers (prompt {ids[0]}"
                          f"{', ...' if len(ids) > 1 else ''})" for s, ids in cut.items())
        raise ConfigError(f"{field}: the teacher's API cut some of its own answers at its output limit (stop "
                          f"reason max_tokens / length; the rows' `truncated`): {parts}. A cut answer is not the "
                          "teacher's whole answer, so no budget can be derived from or checked against it. "
                          "Re-generate those rows with a higher teacher.max_tokens, or set "
                          "eval.allow_truncation=true to run with the cut answers counted as they are (the report "
                          "flags the split)")
    out: dict[str, SplitBudget] = {}
    refused = []
    for split in splits:
        lens = lengths.get(split) or []
        if not lens:
            n = fallback if auto else int(max_new_tokens)
            out[split] = SplitBudget(split, n, "no teacher answers", None, None, 0, None, False, None)
            continue
        pid, longest = max(lens, key=lambda x: x[1])
        n = math.ceil(longest * margin) if auto else int(max_new_tokens)
        n_cut = len(cut.get(split, []))
        out[split] = SplitBudget(split, n, "auto" if auto else "explicit", longest, pid, len(lens),
                                 margin if auto else None, longest > n or n_cut > 0,
                                 sum(1 for _, k in lens if k > n) / len(lens), n_cut)
        if longest > n:
            refused.append(out[split])
    if refused and not allow_truncation:
        parts = "; ".join(f"split {b.split!r}: {b.max_new_tokens} < {b.teacher_longest} tokens, the teacher's longest "
                          f"answer there (prompt {b.teacher_longest_prompt}; {round((b.teacher_cut_share or 0) * b.teacher_answers)} "
                          f"of its {b.teacher_answers} answers would be cut)" for b in refused)
        raise ConfigError(f"{field}: {max_new_tokens} is below the teacher's own answers, in the student's tokens "
                          f"(thinking and end of turn included): {parts}. A perfect student would be cut off. Use "
                          f"{field}=auto (longest x eval.budget_margin) or at least "
                          f"{max(b.teacher_longest or 0 for b in refused)}, or eval.allow_truncation=true to run "
                          f"anyway (the report flags it)")
    return out


def check_dataset_budgets(ec: Any, student_cfg: Any, dataset_dir: str) -> dict[str, SplitBudget] | None:
    """The pipeline's early check, right after the dataset is written and before any training: an explicit
    ``eval.max_new_tokens`` below the teacher's answers on the splits the eval will read, or (with ``auto``
    too) teacher answers there that the API cut, stop the run here (``ConfigError``), not after training.
    Otherwise ``auto`` has nothing to refuse (None); the eval stage resolves it."""
    if ec.allow_truncation or ec.suite is not None:
        return None
    from distill_lab.artifacts.rows import load_rows
    from distill_lab.students.loader import load_tokenizer

    answers = answers_from_rows(load_rows(dataset_dir), list(ec.splits), ec.max_prompts)
    cut = cut_answers(answers)
    if ec.max_new_tokens == "auto" and not cut:
        return None
    splits = list(dict.fromkeys(a.split for a in answers))
    return resolve_budgets(ec.max_new_tokens, splits, teacher_lengths(load_tokenizer(student_cfg), answers),
                           margin=ec.budget_margin, allow_truncation=False, fallback=ec.fallback_max_new_tokens,
                           cut=cut)
