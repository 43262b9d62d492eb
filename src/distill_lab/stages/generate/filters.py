"""Quality filters: each training row is kept or moved to the ``rejected`` split with the first reason.

Nothing is dropped: a rejected row keeps its content, gets ``split = "rejected"``, ``reject_reason``
and its original split in ``origin_split``. Train and eval read only train/test/ood. Held-out rows
(test/ood) are flagged, never moved (see ``apply_filters``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from distill_lab.artifacts.rows import cut_by_api

FILTERS = ("max_tokens", "unclosed_thinking", "empty_answer", "empty_thinking", "unverified", "duplicate")


def _assistant(row: dict[str, Any]) -> dict[str, Any]:
    return row["messages"][-1]


def row_reason(row: dict[str, Any], enabled: set[str], verify: bool) -> str | None:
    """The first filter (in ``FILTERS`` order, duplicates aside) that rejects ``row``, else None."""
    a = _assistant(row)
    content, reasoning = (a.get("content") or ""), a.get("reasoning_content")
    if "max_tokens" in enabled and cut_by_api(row):
        return "max_tokens"
    if "unclosed_thinking" in enabled and ("<think>" in content or "</think>" in content
                                           or row.get("thinking_unclosed")):
        return "unclosed_thinking"
    if "empty_answer" in enabled and not content.strip():
        return "empty_answer"
    if "empty_thinking" in enabled and not (reasoning or "").strip():
        return "empty_thinking"
    if "unverified" in enabled and verify and row.get("verified") is False:
        return "unverified"
    return None


def _fingerprint(row: dict[str, Any]) -> str:
    msgs = [(m["role"], m.get("content") or "", m.get("reasoning_content") or "") for m in row["messages"]]
    return hashlib.sha256(json.dumps(msgs).encode()).hexdigest()


def apply_filters(rows: list[dict[str, Any]], enabled: list[str], verify: bool,
                  splits: tuple[str, ...] | list[str] = ("train",)) -> tuple[list[dict[str, Any]], Counter]:
    """The rows (in the order given), each with ``reject_reason``/``origin_split``; counts by reason.

    Only rows of ``splits`` (the training data) move to ``rejected``. A held-out row (test/ood) that
    a filter catches keeps its split, with the reason recorded and counted as ``heldout_<reason>``:
    the teacher's wrong or cut answers there are part of what eval measures, and dropping them
    would inflate the teacher's accuracy and remove the hardest prompts. The duplicate filter keeps
    the first of identical (prompt, reasoning, answer) rows in that order (generate passes the recipe's).
    """
    on = set(enabled)
    unknown = on - set(FILTERS)
    if unknown:
        raise ValueError(f"generate.filters: unknown filter(s) {sorted(unknown)}; known: {list(FILTERS)}")
    out, counts, seen = [], Counter(), set()
    for r in rows:
        r = dict(r)
        origin = r.get("origin_split") or r["split"]
        reason = row_reason(r, on, verify)
        if reason is None and "duplicate" in on:
            fp = _fingerprint(r)
            if fp in seen:
                reason = "duplicate"
            seen.add(fp)
        r["origin_split"] = origin
        r["reject_reason"] = reason
        moved = bool(reason) and origin in splits
        r["split"] = "rejected" if moved else origin
        counts["kept" if not reason else reason if moved else f"heldout_{reason}"] += 1
        out.append(r)
    return out, counts
