"""The dataset row (contract) and the dataset folder it lives in.

A dataset folder holds:
  rows.jsonl      one JSON row per line, every split (the mirror; what resume and imports read)
  hf/             ``datasets.DatasetDict`` saved with ``save_to_disk``, one split per row ``split``
  README.md       the dataset card (where the recipe stage writes one)
  shards/         the generate stage's journal (raw rows as they arrived, failures): its resume state
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts import jsonio

if TYPE_CHECKING:
    from distill_lab.tasks.base import Problem
    from distill_lab.teachers.base import TeacherReply

ROW_FIELDS = ("id", "prompt_id", "sample_index", "task", "category", "split", "messages", "reference",
              "verified", "teacher", "usage", "cost_usd", "stop_reason", "request_id", "created_at")
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
              "thinking_tokens")
# Fields every row carries besides the contract's (defaults for rows made elsewhere, e.g. imports):
#   reject_reason      why the generate filters moved the row to the ``rejected`` split, else null
#   origin_split       the split the prompt belongs to (equal to ``split`` unless rejected)
#   redacted_thinking  number of redacted_thinking blocks in the teacher's reply (flagged, not dropped)
#   thinking_chars     length of the visible thinking text; with ``usage.thinking_tokens`` (billed thinking
#                      tokens, when the API reports them) it shows how much a summary left out
#   pair_id            the item a held-out prompt shares with its paired control (an edge case with and
#                      without its hint: ``tasks/edge_controls.py``), else null; samples join it by prompt_id
#   truncated          the teacher's API cut the reply at its output limit (``stop_reason`` in
#                      ``CUT_STOP_REASONS``): the row holds a cut answer, not the teacher's whole answer, so its
#                      length is no measure of the teacher's (``students/budget.py`` refuses to derive from it)
OPTIONAL_FIELDS: dict[str, Any] = {"reject_reason": None, "origin_split": None, "redacted_thinking": 0,
                                   "thinking_chars": 0, "pair_id": None, "truncated": False}
# Stop reasons of a reply cut by the API: Anthropic's ``max_tokens`` (and ``model_context_window_exceeded``);
# OpenAI's ``length`` (the client maps it to ``max_tokens``; kept here for rows imported as they came).
CUT_STOP_REASONS = frozenset({"max_tokens", "model_context_window_exceeded", "length"})


def cut_by_api(row: dict[str, Any]) -> bool:
    """The row's teacher answer was cut by the API at its output limit (``truncated``, or its stop reason)."""
    return bool(row.get("truncated")) or row.get("stop_reason") in CUT_STOP_REASONS


def row_id(prompt_id: str, sample_index: int, teacher_fingerprint: dict[str, Any]) -> str:
    """Stable hash of (prompt_id, sample_index, teacher fingerprint): the resume key."""
    key = json.dumps([prompt_id, sample_index, teacher_fingerprint], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def make_row(problem: Problem, sample_index: int, teacher_fp: dict[str, Any], reply: TeacherReply,
             verified: bool | None) -> dict[str, Any]:
    messages = [*problem.messages(),
                {"role": "assistant", "content": reply.content, "reasoning_content": reply.reasoning}]
    usage = {k: int(reply.usage.get(k, 0) or 0) for k in USAGE_KEYS}
    return {
        "id": row_id(problem.prompt_id, sample_index, teacher_fp),
        "prompt_id": problem.prompt_id,
        "sample_index": sample_index,
        "task": problem.task,
        "category": problem.category,
        "split": problem.split,
        "messages": [normalize_message(m) for m in messages],
        "reference": problem.reference,
        "verified": verified,
        "teacher": dict(teacher_fp),
        "usage": usage,
        "cost_usd": float(reply.cost_usd),
        "stop_reason": reply.stop_reason,
        "request_id": reply.request_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "reject_reason": None,
        "origin_split": problem.split,
        "redacted_thinking": int(reply.extra.get("redacted_thinking", 0)),
        "thinking_chars": len(reply.reasoning or ""),
        "thinking_unclosed": bool(reply.extra.get("thinking_unclosed", False)),
        "pair_id": problem.meta.get("pair_id"),
        "truncated": reply.stop_reason in CUT_STOP_REASONS,
    }


def with_defaults(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every optional field present (Arrow needs one schema per split)."""
    out = {**OPTIONAL_FIELDS, **row}
    if out["origin_split"] is None:
        out["origin_split"] = out["split"]
    out["truncated"] = cut_by_api(out)  # rows made elsewhere (imports) carry only their stop reason
    out.pop("thinking_unclosed", None)  # journal-only flag, folded into reject_reason by the filters
    return out


def normalize_message(m: dict[str, Any]) -> dict[str, Any]:
    """Every message has the same keys (Arrow needs one schema): role, content, reasoning_content."""
    return {"role": m["role"], "content": m.get("content") or "", "reasoning_content": m.get("reasoning_content")}


def check_row(row: dict[str, Any], where: str = "row") -> None:
    """Raise ValueError naming the row and field when ``row`` breaks the contract."""
    missing = [f for f in ROW_FIELDS if f not in row]
    if missing:
        raise ValueError(f"{where} (id={row.get('id')!r}): missing fields {missing}")
    msgs = row["messages"]
    if not isinstance(msgs, list) or not msgs or msgs[-1].get("role") != "assistant":
        raise ValueError(f"{where} (id={row['id']!r}): messages must end with an assistant turn")


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return jsonio.read_jsonl(path, ValueError)


def save_dataset(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, int]:
    """Write ``rows.jsonl`` and the HF DatasetDict (one split per ``split``); return counts per split."""
    import datasets

    out_dir = Path(out_dir)
    for i, r in enumerate(rows):
        check_row(r, f"row {i}")
    rows = [with_defaults(r) for r in rows]
    tmp = out_dir / "rows.jsonl.tmp"
    write_jsonl(rows, tmp)
    os.replace(tmp, out_dir / "rows.jsonl")  # readers never see a half-written mirror
    by_split: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_split.setdefault(r["split"], []).append(r)
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(rs) for s, rs in by_split.items()})
    hf, hf_tmp = out_dir / "hf", out_dir / "hf.tmp"
    shutil.rmtree(hf_tmp, ignore_errors=True)
    was_off = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()  # one "Saving the dataset" bar per split is noise here
    try:
        dd.save_to_disk(str(hf_tmp))
    finally:
        if not was_off:
            datasets.utils.enable_progress_bars()
    shutil.rmtree(hf, ignore_errors=True)  # no stale split of an earlier run survives
    os.replace(hf_tmp, hf)
    return {s: len(rs) for s, rs in by_split.items()}


def load_rows(dataset_dir: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of a dataset folder (its ``rows.jsonl`` mirror), optionally one split."""
    path = Path(dataset_dir) / "rows.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{dataset_dir}: not a distill_lab dataset folder (no rows.jsonl)")
    rows = read_jsonl(path)
    return [r for r in rows if split is None or r["split"] == split]
