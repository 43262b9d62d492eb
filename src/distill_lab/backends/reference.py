"""The ``reference`` backend: plain transformers + peft, nothing swapped.

The model keeps the attention implementation it was loaded with (sdpa or eager on CPU). Padded batches
pass their ``attention_mask``; packed and padding-free batches pass their restarting ``position_ids``,
from which transformers builds the block-diagonal mask itself (or runs varlen flash attention where
the model uses it). The loss runs the whole model, full ``[B, T, V]`` logits included, then takes the
supervised positions. Every other backend is tested against this one (``tests/test_backend_parity.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from distill_lab.backends.base import Backend, BackendReport
from distill_lab.backends.forward import answer_selection, supervised, unwrap


class ReferenceBackend(Backend):
    name = "reference"

    def prepare(self, model) -> BackendReport:
        impl = unwrap(model).config._attn_implementation
        return self.report({}, [f"attention: transformers' {impl}"])

    def loss_sum(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        targets, sel, n = supervised(batch)
        kwargs: dict[str, Any] = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        logits = model(**kwargs, use_cache=False).logits[:, :-1][sel]  # [N, V]
        return F.cross_entropy(logits.float(), targets[sel], reduction="sum"), n

    def loss_sums(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, float, int]:
        targets, sel, n = supervised(batch)
        mark = answer_selection(batch, sel)
        kwargs: dict[str, Any] = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        logits = model(**kwargs, use_cache=False).logits[:, :-1][sel]  # [N, V]
        ce = F.cross_entropy(logits.float(), targets[sel], reduction="none")
        if mark is None:
            return ce.sum(), n, 0.0, 0
        return ce.sum(), n, float(ce.detach()[mark].sum()), int(mark.sum())
