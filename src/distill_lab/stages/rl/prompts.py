"""The prompts the rl stage rolls out: one per ``prompt_id`` of ``rl.split`` in a dataset folder, with
its family, reference and the teacher's answers (whose length bounds ``rl.max_completion_tokens``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.rows import cut_by_api, load_rows
from distill_lab.errors import ConfigError


@dataclass
class RLPrompt:
    prompt_id: str
    task: str
    reference: str
    messages: list[dict[str, Any]]  # the conversation before the answer
    teacher_turns: list[dict[str, Any]] = field(default_factory=list)  # the teacher's answers (assistant turns)
    teacher_cut: int = 0  # of those, answers the teacher's API cut at its output limit (the rows' ``truncated``)


def load_prompts(dataset_dir: str | Path, split: str, max_prompts: int | None = None) -> tuple[list[RLPrompt], int]:
    """(prompts, how many were skipped for want of a family or a reference: nothing to verify)."""
    d = Path(dataset_dir)
    if not (d / "rows.jsonl").is_file():
        raise ConfigError(f"rl.dataset_dir: {d} has no rows.jsonl (a dataset folder written by `generate`)")
    by_id: dict[str, RLPrompt] = {}
    skipped: set[str] = set()
    for lineno, r in enumerate(load_rows(d), 1):
        if r.get("split") != split:
            continue
        pid, msgs = r.get("prompt_id"), r.get("messages")
        if not pid or not isinstance(msgs, list) or not msgs:
            raise ValueError(f"{d}/rows.jsonl:{lineno}: row needs prompt_id and messages")
        if not r.get("task") or r.get("reference") is None:
            skipped.add(pid)
            continue
        if pid not in by_id:
            if max_prompts is not None and len(by_id) >= max_prompts:
                continue
            head = msgs[:-1] if msgs[-1].get("role") == "assistant" else msgs
            by_id[pid] = RLPrompt(pid, r["task"], str(r["reference"]),
                                  [{"role": m["role"], "content": m.get("content") or ""} for m in head])
        if msgs[-1].get("role") == "assistant":
            by_id[pid].teacher_turns.append(msgs[-1])
            by_id[pid].teacher_cut += cut_by_api(r)
    if not by_id:
        raise ConfigError(f"rl.split: no verifiable prompts of split {split!r} in {d} "
                          f"({len(skipped)} without a task family or reference)")
    return list(by_id.values()), len(skipped)


def check_budget(prompts: list[RLPrompt], tokenizer: Any, max_tokens: int, allow_short: bool) -> int:
    """The teacher's longest answer in student tokens (end of turn included); raises ``ConfigError``
    naming ``rl.max_completion_tokens`` when the budget is below it, or when the teacher's API cut some of its
    answers (their length is a lower bound, not the teacher's answer), unless ``allow_short``."""
    cut = [p.prompt_id for p in prompts if p.teacher_cut]
    if cut and not allow_short:
        raise ConfigError(f"rl.max_completion_tokens: the teacher's API cut {sum(p.teacher_cut for p in prompts)} of "
                          f"its answers on the rl prompts at its output limit (stop reason max_tokens / length; "
                          f"prompt {cut[0]}{', ...' if len(cut) > 1 else ''}), so the budget cannot be checked "
                          "against the teacher's whole answers: re-generate them with a higher teacher.max_tokens "
                          "(or keep generate.filters' max_tokens on, which moves cut train rows out), or set "
                          "rl.allow_short_completions=true")
    from distill_lab.students.budget import answer_tokens

    # counted as the eval budget counts them (students/budget.py): the student's chat template renders the
    # turn as the student writes it (thinking, answer, end of turn), so both budgets share one measure
    longest, where = 0, None
    for p in prompts:
        for turn in p.teacher_turns:
            n = answer_tokens(tokenizer, [*p.messages, turn], where=f"teacher answer {p.prompt_id} (rl)")
            if n > longest:
                longest, where = n, p.prompt_id
    if longest > max_tokens and not allow_short:
        raise ConfigError(f"rl.max_completion_tokens: {max_tokens} is below the teacher's longest answer "
                          f"({longest} tokens with the student's tokenizer, end of turn included, prompt_id "
                          f"{where}): raise it, or set rl.allow_short_completions=true to cut such answers")
    return longest
