"""The forward of a training batch shared by the fast backends: kwargs per attention implementation,
then the decoder and the chunked LM head + loss at the supervised positions (``backends/loss.py``).

``model_inputs`` passes no dense attention mask. Padded batches are right-padded, so causal attention
alone keeps real tokens off the padding (see ``cpu/attention.py``): their ``attention_mask`` is not
passed. Packed and padding-free batches pass their restarting ``position_ids`` and, when the model runs
``distill_segments`` attention (CPU), their row ``segments``; a ``distill_varlen_*`` model (CUDA) gets
one varlen sequence (``cuda/varlen.py``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from distill_lab.backends.cpu.attention import NAME as SEGMENT_ATTENTION
from distill_lab.backends.cuda.varlen import is_varlen, varlen_inputs
from distill_lab.backends.loss import supervised_loss_sum
from distill_lab.backends.maskless import maskless
from distill_lab.students.chat import IGNORE


def unwrap(model):
    """The ``*ForCausalLM`` inside a peft wrapper (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def model_inputs(model, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Forward kwargs of a training batch (``stages/train/packing.py``), without any dense attention mask."""
    if "cu_seqlens" in batch and is_varlen(model):  # CUDA: one varlen sequence (backends/cuda/varlen.py)
        return varlen_inputs(batch)
    kwargs: dict[str, Any] = {k: batch[k] for k in ("input_ids", "position_ids") if k in batch}
    if "segments" in batch and unwrap(model).config._attn_implementation == SEGMENT_ATTENTION:
        per_seq: list[list[tuple[int, int]]] = [[] for _ in range(batch["input_ids"].shape[0])]
        for s, start, end in batch["segments"].tolist():
            per_seq[s].append((start, end))
        kwargs["segments"] = per_seq
    return kwargs


def supervised(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(targets [B, T-1], sel [B, T-1] bool, n)``: next-token targets, where they are supervised, how many."""
    targets = batch["labels"][:, 1:]
    sel = targets != IGNORE
    return targets, sel, int(sel.sum())


def token_loss_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropies over supervised targets, and their count.

    The decoder runs, then the LM head and loss only at supervised positions, in chunks, inside the
    root module's forward (``backends/loss.py``: bounded memory, FSDP2 gathers the head's weights).
    """
    loss, n, _, _ = token_loss_sums(model, batch)
    return loss, n


def answer_selection(batch: dict[str, torch.Tensor], sel: torch.Tensor) -> torch.Tensor | None:
    """[N] bool over the supervised targets ``sel`` selects: which are the final answer's tokens
    (``answer_labels``, ``stages/train/packing.py``); None when the batch marks no answer."""
    if "answer_labels" not in batch:
        return None
    return (batch["answer_labels"][:, 1:] != IGNORE)[sel]


def token_loss_sums(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, float, int]:
    """``token_loss_sum`` and, from the same logits, the loss summed over the final answer's targets
    (no gradient) and their count (0 and 0 when the batch marks no answer)."""
    targets, sel, n = supervised(batch)
    mark = answer_selection(batch, sel)
    kwargs = model_inputs(model, batch)
    with maskless() if "segments" in kwargs or "cu_seq_lens_q" in kwargs else nullcontext():
        if mark is None:
            return supervised_loss_sum(model, kwargs, sel, targets[sel]), n, 0.0, 0
        loss, marked = supervised_loss_sum(model, kwargs, sel, targets[sel], mark=mark)
    return loss, n, float(marked), int(mark.sum())
