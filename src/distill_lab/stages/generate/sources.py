"""External prompt sources and teacher datasets for recipes.

``load_source(spec, index=i, seed=s, strict=b)`` reads one ``recipe.sources[i]`` entry:
  jsonl / parquet / hf   records with a prompt (``prompt_field``, dotted paths allowed) and an optional
                         reference -> ``Problem``s of task ``spec.task`` (default ``freeform``).
  teacher_dataset        records holding the teacher's answer in ``messages_field``, in any of the
                         public shapes below -> dataset rows (the row contract), trained on directly:
                           assistant ``reasoning_content`` (our own shape), ``thinking`` or
                           ``reasoning`` fields, ``<think>...</think>`` inside ``content`` (also with
                           the opening tag left to the chat template), or a list of content blocks
                           ``{"type": "thinking", "thinking": ...}`` + ``{"type": "text", "text": ...}``.
                         Every shape of the same conversation yields the identical row.
Files: ``.jsonl``/``.json`` (one JSON object a line), ``.parquet``, a folder saved with
``save_to_disk``, a folder of data files, a distill_lab dataset folder (``rows.jsonl``), or a hub id
(``datasets.load_dataset``; needs the network).

Bad input names the file and line (or row): a line that is not JSON, a record without the mapped
field, an assistant turn without text. With ``strict`` the first one raises ``SourceError``; without,
bad records are skipped and counted (``SourceItems.bad``). An empty source always raises.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.rows import USAGE_KEYS, normalize_message, row_id
from distill_lab.errors import ConfigError
from distill_lab.stages.generate.config import SourceSpec
from distill_lab.tasks.base import CATEGORIES, SPLITS, Problem, family_names, get_family, make_prompt_id

log = logging.getLogger(__name__)


class SourceError(ConfigError):
    """A source or one of its records is unusable; the message names the file, line and field.

    A ``ConfigError``: the CLI reports it in one line and exits 2, before anything is sent."""


# the split of the DatasetDict a record came from (or the one ``hf_split`` named), carried on the record
HF_SPLIT_KEY = "__distill_lab_hf_split__"
# DatasetDict split names -> recipe splits: held-out splits stay held out, never train
HF_SPLITS = {"train": "train", "test": "test", "validation": "test", "valid": "test", "dev": "test", "ood": "ood"}


@dataclass
class SourceItems:
    name: str
    problems: dict[str, list[Problem]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    bad: list[str] = field(default_factory=list)  # "where: why" of each skipped record
    read: int = 0  # records read
    rejected: int = 0  # rows of a distill_lab dataset's ``rejected`` split (filtered out there; not imported)

    def count(self, split: str) -> int:
        return len(self.problems[split]) + len(self.rows[split])


# ------------------------------------------------------------------------------------- reading
def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                out.append((f"{path}:{lineno}", line))
    return out


def _parse_jsonl_record(where: str, line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise SourceError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(rec, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _read_parquet(path: Path) -> list[tuple[str, Any]]:
    import pyarrow.parquet as pq

    return [(f"{path} row {i}", rec) for i, rec in enumerate(pq.read_table(path).to_pylist())]


def _read_hf(path: str, hf_split: str | None) -> list[tuple[str, Any]]:
    import datasets

    p = Path(path)
    if p.is_dir() and ((p / "dataset_dict.json").exists() or (p / "state.json").exists()):
        ds = datasets.load_from_disk(str(p))
    else:
        try:
            ds = datasets.load_dataset(path, split=hf_split)
        except Exception as e:  # noqa: BLE001 (hub or file errors: report which source failed)
            raise SourceError(f"{path}: cannot load as a Hugging Face dataset ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if hf_split is not None:
            if hf_split not in ds:
                raise SourceError(f"{path}: no split {hf_split!r}; has {sorted(ds)}")
            parts = {hf_split: ds[hf_split]}
        else:
            parts = dict(ds)
        return [(f"{path} [{s}] row {i}", {**rec, HF_SPLIT_KEY: s}) for s, d in parts.items() for i, rec in enumerate(d)]
    if hf_split is not None and p.is_dir():  # a saved single Dataset has no splits to choose from
        raise SourceError(f"{path}: recipe.sources.hf_split={hf_split!r}, but this is a single Dataset without "
                          f"splits; remove hf_split, and set recipe.sources.split={HF_SPLITS.get(hf_split, 'test')} "
                          "to put its rows in that split")
    return [(f"{path} row {i}", {**rec, HF_SPLIT_KEY: hf_split} if hf_split else rec) for i, rec in enumerate(ds)]


def read_records(spec: SourceSpec) -> list[tuple[str, Any]]:
    """(location, raw record) pairs; a JSONL record stays a string until parsed (so a bad line is
    reported, or skipped, like any other bad record)."""
    fmt = spec.kind if spec.kind != "teacher_dataset" else spec.format
    path = Path(spec.path)
    if fmt is None:
        if path.is_dir():
            fmt = "jsonl" if (path / "rows.jsonl").exists() else "hf"
        elif path.suffix in (".jsonl", ".json"):
            fmt = "jsonl"
        elif path.suffix == ".parquet":
            fmt = "parquet"
        else:
            fmt = "hf"
    if fmt in ("jsonl", "parquet") and path.is_dir() and (path / "rows.jsonl").exists():
        path = path / "rows.jsonl"
        fmt = "jsonl"
    if fmt in ("jsonl", "parquet") and not path.is_file():
        raise SourceError(f"{spec.path}: file not found")
    if fmt == "jsonl":
        return _read_jsonl(path)
    if fmt == "parquet":
        return _read_parquet(path)
    return _read_hf(spec.path, spec.hf_split)


# ----------------------------------------------------------------------------------- mapping
_MISSING = object()


def get_field(rec: dict[str, Any], dotted: str) -> Any:
    cur: Any = rec
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


_THINK = re.compile(r"^\s*(?:<think>(.*?)</think>|(.*?)</think>)\s*(.*)$", re.S)


def split_thinking(message: dict[str, Any], where: str) -> tuple[str, str | None]:
    """(final answer, thinking or None) of an assistant message in any supported shape."""
    content = message.get("content")
    thinking = None
    if isinstance(content, list):  # content blocks (Anthropic shape)
        texts, thoughts = [], []
        for b in content:
            if not isinstance(b, dict):
                raise SourceError(f"{where}: assistant content block is not an object")
            if b.get("type") == "thinking":
                thoughts.append(b.get("thinking") or "")
            elif b.get("type") == "text":
                texts.append(b.get("text") or "")
        content = "".join(texts)
        thinking = "\n".join(thoughts) if thoughts else None
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise SourceError(f"{where}: assistant 'content' must be a string or content blocks")
    for key in ("reasoning_content", "thinking", "reasoning"):
        if thinking is None and isinstance(message.get(key), str) and message[key].strip():
            thinking = message[key]
    if thinking is not None and ("<think>" in content or "</think>" in content):
        # the thinking twice: a field and tags in the content (a row would train two think blocks)
        m = _THINK.match(content)
        inner = (m.group(1) if m.group(1) is not None else m.group(2)) if m else None
        if inner is None or " ".join(inner.split()) != " ".join(thinking.split()):
            raise SourceError(f"{where}: the assistant turn has a reasoning field and different <think> text in its "
                              "content; keep one of them")
        content = m.group(3)
    if thinking is None and "<think>" in content and "</think>" not in content:
        raise SourceError(f"{where}: '<think>' in the assistant content is never closed (a truncated answer?)")
    if thinking is None and "</think>" in content:
        m = _THINK.match(content)
        if m:
            thinking = m.group(1) if m.group(1) is not None else m.group(2)
            content = m.group(3)
    content = content.strip()
    thinking = thinking.strip() if thinking is not None else None
    if not content:
        raise SourceError(f"{where}: the assistant turn has no answer text")
    return content, thinking or None


def _task_of(spec: SourceSpec, rec: dict[str, Any], known: list[str]) -> str:
    if spec.task:
        return spec.task
    t = rec.get("task")
    return t if isinstance(t, str) and t in known else "freeform"


def _split_of(spec: SourceSpec, rec: dict[str, Any], where: str) -> str:
    if spec.split:
        return spec.split
    s = rec.get(spec.split_field) if spec.split_field else None
    if s is None:  # a DatasetDict's test / validation split stays held out
        return HF_SPLITS.get(str(rec.get(HF_SPLIT_KEY)), "train")
    if s not in SPLITS:
        raise SourceError(f"{where}: field {spec.split_field!r} is {s!r}; expected one of {SPLITS}")
    return s


def _reference(spec: SourceSpec, rec: dict[str, Any]) -> str | None:
    if not spec.reference_field:
        return None
    ref = get_field(rec, spec.reference_field)
    if ref is _MISSING or ref is None:
        return None
    return ref if isinstance(ref, str) else json.dumps(ref, sort_keys=True)


def to_problem(spec: SourceSpec, rec: dict[str, Any], where: str, known: list[str]) -> Problem:
    prompt = get_field(rec, spec.prompt_field)
    if prompt is _MISSING:
        raise SourceError(f"{where}: missing field {spec.prompt_field!r} (recipe.sources.prompt_field); "
                          f"fields present: {sorted(k for k in rec if k != HF_SPLIT_KEY)}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SourceError(f"{where}: field {spec.prompt_field!r} must be a non-empty string")
    task, split = _task_of(spec, rec, known), _split_of(spec, rec, where)
    cat = rec.get("category") if rec.get("category") in CATEGORIES else spec.category
    return Problem(prompt_id=make_prompt_id(task, split, prompt.strip()), task=task, category=cat, split=split,
                   prompt=prompt.strip(), reference=_reference(spec, rec), meta={"source": where})


def context_text(messages: list[dict[str, Any]]) -> str:
    """What a row's last answer responds to: the last user turn alone for a single exchange, else every
    user and assistant turn before the last answer (so two conversations ending alike stay apart)."""
    turns = [m for m in messages if m["role"] != "system"][:-1]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in turns)


def to_row(spec: SourceSpec, rec: dict[str, Any], where: str, known: list[str], verify: bool) -> dict[str, Any]:
    msgs = get_field(rec, spec.messages_field)
    if msgs is _MISSING:
        raise SourceError(f"{where}: missing field {spec.messages_field!r} (recipe.sources.messages_field); "
                          f"fields present: {sorted(k for k in rec if k != HF_SPLIT_KEY)}")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m for m in msgs):
        raise SourceError(f"{where}: field {spec.messages_field!r} must be a list of messages with a 'role'")
    users = [m for m in msgs if m["role"] == "user"]
    if not users or msgs[-1]["role"] != "assistant":
        raise SourceError(f"{where}: messages need a user turn and must end with an assistant turn")
    other = sorted({str(m["role"]) for m in msgs} - {"system", "user", "assistant"})
    if other:
        raise SourceError(f"{where}: messages with role(s) {other} cannot be imported (system, user and assistant "
                          "turns can)")
    turns = [m for m in msgs if m["role"] != "system"]
    kept: list[dict[str, Any]] = []  # every turn, earlier ones too: a last answer may depend on them
    for k, m in enumerate(turns):
        here = where if k == len(turns) - 1 else f"{where} (turn {k + 1} of {len(turns)})"
        if m["role"] == "user":
            text = m.get("content")
            if not isinstance(text, str) or not text.strip():
                raise SourceError(f"{here}: the user turn has no text")
            kept.append(normalize_message({"role": "user", "content": text.strip()}))
        else:
            answer, thought = split_thinking(m, here)
            kept.append(normalize_message({"role": "assistant", "content": answer, "reasoning_content": thought}))
    content = kept[-1]["content"]
    system = next((m.get("content") for m in msgs if m["role"] == "system"), None)
    task, split = _task_of(spec, rec, known), _split_of(spec, rec, where)
    cat = rec.get("category") if rec.get("category") in CATEGORIES else spec.category
    reference = _reference(spec, rec)
    fp = rec.get("teacher") if isinstance(rec.get("teacher"), dict) else {
        "provider": "import", "model": rec.get("model"), "effort": rec.get("effort"), "budget_tokens": None}
    prompt_id = make_prompt_id(task, split, context_text(kept))
    messages = [normalize_message({"role": "system", "content": system})] if system else []
    messages += kept
    usage_in = rec.get("usage") if isinstance(rec.get("usage"), dict) else {}
    verified = rec.get("verified") if isinstance(rec.get("verified"), bool) else None
    if verify and reference is not None and task in known:
        verified = get_family(task).verify(content, reference)
    return {
        "id": None,  # set once the sample index is known
        "prompt_id": prompt_id,
        "sample_index": 0,
        "task": task, "category": cat, "split": split,
        "messages": messages,
        "reference": reference,
        "verified": verified,
        "teacher": dict(fp),
        "usage": {k: int(usage_in.get(k, 0) or 0) for k in USAGE_KEYS},
        "cost_usd": float(rec.get("cost_usd") or 0.0),
        "stop_reason": rec.get("stop_reason"),
        "request_id": rec.get("request_id"),
        "created_at": rec.get("created_at"),
    }


def load_source(spec: SourceSpec, *, index: int = 0, seed: int = 0, strict: bool = True,
                verify: bool = True) -> SourceItems:
    """Read, map and split one source; rows/problems are shuffled by ``seed`` when ``spec.shuffle``."""
    name = spec.name or Path(spec.path).name or spec.path
    label = f"recipe.sources[{index}] ({spec.path})"
    known = family_names()
    if spec.task is not None and spec.task not in known:
        raise SourceError(f"{label}: recipe.sources[{index}].task: unknown task family {spec.task!r}; known: {known}")
    raw = read_records(spec)
    if spec.limit is not None:
        raw = raw[: spec.limit]
    if not raw:
        raise SourceError(f"{label}: empty source (no records)")
    items = SourceItems(name=name, read=len(raw))
    for where, rec in raw:
        try:
            if isinstance(rec, str):
                rec = _parse_jsonl_record(where, rec)
            if spec.split is None and spec.split_field and rec.get(spec.split_field) == "rejected":
                items.rejected += 1
                continue
            if spec.kind == "teacher_dataset":
                row = to_row(spec, rec, where, known, verify)
                items.rows[row["split"]].append(row)
            else:
                p = to_problem(spec, rec, where, known)
                items.problems[p.split].append(p)
        except SourceError as e:
            if strict:
                raise SourceError(f"{e} [{label}; recipe.strict=false skips bad records]") from None
            items.bad.append(str(e))
    if not any(items.count(s) for s in SPLITS):
        raise SourceError(f"{label}: no usable records ({len(items.bad)} bad: {items.bad[:3]})")
    if items.bad:  # recipe.strict=false: skipped, and said so
        log.warning("%s: skipped %d of %d records (recipe.strict=false), e.g. %s", label, len(items.bad),
                    items.read, items.bad[0])
    for s in SPLITS:  # a repeated prompt is another sample of it; ids follow the contract
        seen: Counter[str] = Counter()
        for row in items.rows[s]:
            row["sample_index"] = seen[row["prompt_id"]]
            seen[row["prompt_id"]] += 1
            row["id"] = row_id(row["prompt_id"], row["sample_index"], row["teacher"])
    if spec.shuffle:
        for s in SPLITS:
            rng = random.Random(f"{seed}/source/{name}/{s}")
            rng.shuffle(items.problems[s])
            rng.shuffle(items.rows[s])
    return items
