"""The ``cpu_fast`` backend: what each op becomes, decided once from the run's precision, quantisation
and strategy.

- attention: ``distill_segments`` (``attention.py``) for models on sdpa or eager: causal attention
  inside each row, no dense mask; in fp32 through the C++ row kernel, in bf16 through PyTorch's CPU
  flash-attention kernels;
- LM head + loss: the head runs only at supervised positions (``select.head_loss_sum``); under FSDP2
  the whole model runs (its root module gathers the head's weights around its own forward);
- LoRA linears (``fused_lora.py``): every precision (under bf16 autocast with the frozen base weight
  cast once); not over 4-bit (QLoRA) base layers, not under FSDP2;
- RMSNorm (``fused_norm.py``): fp32 inputs (32-true, and the residual stream under bf16-mixed);
- the SwiGLU gate (``fused_mlp.py``): 32-true only (an fp32 C++ kernel); neither under FSDP2.

Whatever is left out is said in the report, with the reason; the modules keep their own forward.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from distill_lab.backends.cpu import attention
from distill_lab.backends.select import Backend, BackendReport, head_loss_sum, supervised, unwrap


def _attention_modules(model) -> int:
    return sum(1 for m in unwrap(model).modules() if type(m).__name__.endswith("Attention") and hasattr(m, "head_dim"))


def model_inputs(model, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Forward kwargs of a training batch, without any dense attention mask.

    Padded batches are right-padded, so causal attention alone keeps real tokens off the padding (see
    ``attention.py``): their ``attention_mask`` is not passed. Packed and padding-free batches pass
    their restarting ``position_ids`` and, when the model runs ``distill_segments`` attention, their
    row ``segments``.
    """
    kwargs: dict[str, Any] = {k: batch[k] for k in ("input_ids", "position_ids") if k in batch}
    if "segments" in batch and unwrap(model).config._attn_implementation == attention.NAME:
        per_seq: list[list[tuple[int, int]]] = [[] for _ in range(batch["input_ids"].shape[0])]
        for s, start, end in batch["segments"].tolist():
            per_seq[s].append((start, end))
        kwargs["segments"] = per_seq
    return kwargs


def token_loss_sum(model, batch: dict[str, torch.Tensor], *, sparse_head: bool = True) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropies over supervised targets, and their count.

    ``sparse_head``: run the decoder, then the LM head only at supervised positions (saves the
    [B, T, V] logits of unsupervised positions; SmolLM2's head is a fifth of its FLOPs).
    """
    targets, sel, n = supervised(batch)
    kwargs = model_inputs(model, batch)
    with attention.maskless() if "segments" in kwargs else nullcontext():
        if sparse_head:
            lm = unwrap(model)
            hidden = lm.model(**kwargs, use_cache=False).last_hidden_state  # [B, T, H]
            return head_loss_sum(lm.lm_head, hidden[:, :-1][sel], targets[sel]), n
        logits = model(**kwargs, use_cache=False).logits[:, :-1][sel]  # [N, V]
    return torch.nn.functional.cross_entropy(logits.float(), targets[sel], reduction="sum"), n


class CpuFastBackend(Backend):
    name = "cpu_fast"

    @property
    def sharded(self) -> bool:
        return self.traits.strategy == "fsdp2"

    def prepare(self, model) -> BackendReport:
        from distill_lab.backends.cpu.fused_lora import fuse_lora_layers
        from distill_lab.backends.cpu.fused_mlp import fuse_swiglu_mlps
        from distill_lab.backends.cpu.fused_norm import fuse_rms_norms

        t, replaced, notes = self.traits, {}, []
        impl = unwrap(model).config._attn_implementation
        if impl in ("sdpa", "eager"):
            attention.use_segment_attention(model)
            replaced["attention"] = _attention_modules(model)
            fp32 = t.precision == "32-true" and next(unwrap(model).parameters()).dtype == torch.float32
            kernel = fp32 and attention.row_kernel_takes(unwrap(model).config)
            notes.append("attention: " + ("C++ row kernel (fp32)" if kernel else "PyTorch's CPU flash-attention kernels"))
        else:
            notes.append(f"attention: the model's own {impl} (not sdpa or eager)")
        if self.sharded:
            notes.append("fsdp2: LoRA, RMSNorm and SwiGLU keep their own forward (FSDP2 swaps parameters "
                         "around it); the LM head runs over every position")
            return self.report(replaced, notes)
        replaced["lora_linear"] = fuse_lora_layers(model)
        if t.quantized:
            notes.append("lora_linear: 4-bit (QLoRA) base layers keep peft's forward")
        if t.precision in ("32-true", "bf16-mixed"):
            replaced["rms_norm"] = fuse_rms_norms(model)
            if t.precision == "bf16-mixed":
                notes.append("rms_norm: on fp32 inputs (the residual stream); norms fed bf16 keep their own forward")
        else:
            notes.append(f"rms_norm: an fp32 op, not under {t.precision}")
        if t.precision == "32-true":
            replaced["swiglu"] = fuse_swiglu_mlps(model)
        else:
            notes.append(f"swiglu: an fp32 kernel, not under {t.precision}")
        return self.report(replaced, notes)

    def loss_sum(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return token_loss_sum(model, batch, sparse_head=not self.sharded)
