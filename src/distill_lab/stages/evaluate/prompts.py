"""Held-out prompts to evaluate on, with the teacher's answers to them.

Two sources:
- a dataset folder (rows contract): rows of the chosen splits, grouped by ``prompt_id``; the prompt is
  the messages before the assistant turn, the teacher's answers are the assistant turns (one per
  ``sample_index``), scored with the row family's verifier;
- an external suite (``eval.suite_file``): a JSONL file, one prompt a line:
  ``{"prompt": str | "messages": [...], "reference": str|null, "task": str|null, "category": str,
  "split": str, "id": str, "teacher_answer": str|null}``; only ``prompt``/``messages`` is required
  (category defaults to ``knowledge``, split to ``test``; without ``task`` the generic verifier is used).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.rows import cut_by_api, load_rows
from distill_lab.stages.evaluate.extract import join_thinking
from distill_lab.tasks.base import CATEGORIES, SPLITS


@dataclass
class EvalPrompt:
    prompt_id: str
    task: str | None  # family name (None: generic verifier)
    category: str
    split: str
    messages: list[dict[str, Any]]  # the conversation up to (not including) the answer
    reference: str | None
    teacher_outputs: list[str] = field(default_factory=list)  # teacher texts, thinking as <think>..</think>
    # per teacher output: the teacher's API cut it at its output limit (the row's ``truncated``)
    teacher_cut: list[bool] = field(default_factory=list)
    # the item this prompt shares with its paired control (an edge case with and without its hint); None: unpaired
    pair_id: str | None = None

    @property
    def user_text(self) -> str:
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""


def _prompt_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages before the final assistant turn, with the keys a chat template expects."""
    head = messages[:-1] if messages and messages[-1].get("role") == "assistant" else messages
    return [{"role": m["role"], "content": m.get("content") or ""} for m in head]


def load_heldout(dataset_dir: str | Path, splits: list[str], max_prompts: int | None = None) -> list[EvalPrompt]:
    """Prompts of ``splits`` in a dataset folder, in file order, at most ``max_prompts`` per split."""
    rows = load_rows(dataset_dir)
    by_id: dict[str, EvalPrompt] = {}
    samples: dict[str, list[tuple[int, str, bool]]] = {}
    per_split: dict[str, int] = {}
    for lineno, r in enumerate(rows, 1):
        if r.get("split") not in splits:
            continue
        pid = r.get("prompt_id")
        msgs = r.get("messages")
        if not pid or not isinstance(msgs, list) or not msgs:
            raise ValueError(f"{dataset_dir}/rows.jsonl:{lineno}: row needs prompt_id and messages")
        if pid not in by_id:
            if max_prompts is not None and per_split.get(r["split"], 0) >= max_prompts:
                continue
            per_split[r["split"]] = per_split.get(r["split"], 0) + 1
            by_id[pid] = EvalPrompt(pid, r.get("task"), r.get("category") or "reasoning", r["split"],
                                    _prompt_messages(msgs), r.get("reference"), pair_id=r.get("pair_id"))
            samples[pid] = []
        last = msgs[-1]
        if last.get("role") == "assistant":
            text = join_thinking(last.get("reasoning_content"), last.get("content") or "")
            samples[pid].append((int(r.get("sample_index") or 0), text, cut_by_api(r)))
    for pid, p in by_id.items():
        ordered = sorted(samples[pid], key=lambda s: s[0])
        p.teacher_outputs = [t for _, t, _ in ordered]
        p.teacher_cut = [c for _, _, c in ordered]
    if not by_id:
        raise ValueError(f"{dataset_dir}: no rows in splits {splits} (eval.splits)")
    return list(by_id.values())


def load_suite(path: str | Path, max_prompts: int | None = None) -> list[EvalPrompt]:
    """Prompts of an external JSONL suite; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"eval.suite_file: no such file {path}")
    out: list[EvalPrompt] = []
    per_split: dict[str, int] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object")
            if isinstance(obj.get("messages"), list) and obj["messages"]:
                messages = _prompt_messages(obj["messages"])
            elif isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
                messages = [{"role": "user", "content": obj["prompt"]}]
            else:
                raise ValueError(f"{where}: field 'prompt' (a non-empty string) or 'messages' is required")
            category = obj.get("category") or "knowledge"
            if category not in CATEGORIES:
                raise ValueError(f"{where}: field 'category' is {category!r}; expected one of {CATEGORIES}")
            split = obj.get("split") or "test"
            if split not in SPLITS:
                raise ValueError(f"{where}: field 'split' is {split!r}; expected one of {SPLITS}")
            ref = obj.get("reference")
            if ref is not None and not isinstance(ref, str):
                ref = json.dumps(ref) if isinstance(ref, dict | list) else str(ref)
            task = obj.get("task")
            if task is not None:
                from distill_lab.tasks.base import get_family

                try:
                    get_family(task)
                except KeyError as e:
                    raise ValueError(f"{where}: field 'task': {e.args[0]}") from None
            if max_prompts is not None and per_split.get(split, 0) >= max_prompts:
                continue
            per_split[split] = per_split.get(split, 0) + 1
            pid = str(obj.get("id") or hashlib.sha256(json.dumps(messages).encode()).hexdigest()[:16])
            teacher = obj.get("teacher_answer")
            out.append(EvalPrompt(pid, task, category, split, messages, ref,
                                  [teacher] if isinstance(teacher, str) else []))
    if not out:
        raise ValueError(f"eval.suite_file: {path} has no prompts")
    return out
