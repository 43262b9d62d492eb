"""What one run of a sweep cost: teacher spend, supervised tokens trained, training FLOPs, wall time, machine.

``RunCost`` is the record the sweep report and the W&B Report read. Other stages add their own spend
through ``extra_usd`` (a name -> USD dict: e.g. ``{"voting": 1.2}`` for a voting run's extra teacher
samples, ``{"rl_rollouts": 3.4}`` for RL rollouts); ``total_usd`` sums everything present.

Teacher spend has a ``teacher_usd_kind``:

- ``paid``: what the rows' requests really cost (``dataset.json``'s ``cost_usd``, the sum of each row's
  ``cost_usd`` from the API's usage and the teacher's price table);
- ``projected``: the rows' token counts priced at a named model's list prices (``price_model``), for a
  teacher that cost nothing (the offline oracle). Rows that carry the API's ``usage`` counts are priced
  from them; rows without (the oracle reports none) from their text at ``chars_per_token`` characters
  per token, an estimate (Claude's tokenizer is not public; the ``token_source`` field says which);
- ``none``: nothing known.

Training FLOPs: ``6 x params x supervised tokens`` with ``params`` = ALL the student's parameters
(``params_kind="all"``). With a LoRA adapter the forward pass and the backward pass through the
activations still run through every weight; only the weight-gradient third is limited to the adapter, so
6 x all is an upper bound (about 4 x all + 2 x trainable is closer). Prompt tokens, which also pass
forward but are not supervised, are not counted. It is an estimate for ordering settings, not a
measurement.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FLOPS_PER_PARAM_TOKEN = 6  # forward (2) + backward (4) multiply-adds per parameter and token


@dataclass
class TokenCounts:
    """Teacher tokens behind a dataset's rows."""

    input_tokens: int = 0
    output_tokens: int = 0  # thinking included (billed as output)
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    rows: int = 0
    source: str = "usage"  # usage | estimated from characters (chars_per_token=...)


@dataclass
class RunCost:
    teacher_usd: float | None = None
    teacher_usd_kind: str = "none"  # paid | projected | none
    price_model: str | None = None  # the model whose list prices projected teacher_usd
    teacher_input_tokens: int | None = None
    teacher_output_tokens: int | None = None
    token_source: str | None = None
    supervised_tokens: float | None = None
    params: int | None = None
    params_kind: str = "all"
    train_flops: float | None = None
    wall_s: float | None = None
    machine: str | None = None
    extra_usd: dict[str, float] = field(default_factory=dict)  # voting samples, RL rollouts, ...
    # generation: the tokens the rl stage sampled (its rollouts), and the student's mean output tokens per
    # greedy held-out answer at eval (what serving it costs per answer); None where not run / not recorded
    rl_rollout_tokens: int | None = None
    answer_tokens: float | None = None

    @property
    def total_usd(self) -> float | None:
        """Teacher spend plus every other cost recorded; None when none is known."""
        parts = [v for v in (self.teacher_usd, *self.extra_usd.values()) if v is not None]
        return sum(parts) if parts else None

    @property
    def usd_label(self) -> str:
        """How the teacher spend was found, for table headers and plot axes."""
        if self.teacher_usd_kind == "projected":
            return f"projected at {self.price_model} list prices"
        return self.teacher_usd_kind

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total_usd": self.total_usd}


def train_flops(params: int | None, tokens: float | None) -> float | None:
    """``6 x params x tokens`` (see the module doc for which params and tokens)."""
    if params is None or tokens is None:
        return None
    return float(FLOPS_PER_PARAM_TOKEN) * params * tokens


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return "" if content is None else str(content)


def _has_usage(row: dict[str, Any]) -> bool:
    u = row.get("usage") or {}
    return sum(int(u.get(k, 0) or 0) for k in ("input_tokens", "output_tokens")) > 0


def count_tokens(rows: list[dict[str, Any]], chars_per_token: float = 4.0) -> TokenCounts:
    """Teacher tokens of ``rows``, row by row: the API's ``usage`` where the row has one, else an estimate
    from its text (prompt messages as input; the assistant's answer and reasoning as output). ``source``
    says which: ``usage``, ``estimated from characters (...)``, or for a mix (generated rows beside imported
    ones) both, with the count of estimated rows."""
    if chars_per_token <= 0:
        raise ValueError(f"chars_per_token must be > 0, got {chars_per_token}")
    out = TokenCounts(rows=len(rows))
    estimated = 0
    for r in rows:
        if _has_usage(r):
            u = r.get("usage") or {}
            out.input_tokens += int(u.get("input_tokens", 0) or 0)
            out.output_tokens += int(u.get("output_tokens", 0) or 0)
            out.cache_write_tokens += int(u.get("cache_creation_input_tokens", 0) or 0)
            out.cache_read_tokens += int(u.get("cache_read_input_tokens", 0) or 0)
            continue
        estimated += 1
        for m in r.get("messages") or []:
            if m.get("role") == "assistant":
                chars = len(_text(m.get("content"))) + len(_text(m.get("reasoning_content")))
                out.output_tokens += math.ceil(chars / chars_per_token)
            else:
                out.input_tokens += math.ceil(len(_text(m.get("content"))) / chars_per_token)
    how = f"estimated from characters (chars_per_token={chars_per_token:g})"
    if estimated and estimated < len(rows):
        out.source = f"usage; {estimated} of {len(rows)} rows without usage {how}"
    elif estimated:
        out.source = how
    return out


def machine() -> str:
    """This machine in words: CPU model, cores, and the GPU when torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    words = f"{cpu}, {os.cpu_count()} cores"
    try:
        import sys

        torch = sys.modules.get("torch")  # only when already loaded: never import torch for this
        if torch is not None and torch.cuda.is_available():
            words += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - a description, never a failure
        pass
    return words
