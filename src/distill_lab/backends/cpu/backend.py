"""The ``cpu_fast`` backend: what each op becomes, decided once from the run's precision, quantisation
and strategy.

- attention: ``distill_segments`` (``attention.py``) for models on sdpa or eager: causal attention
  inside each row, no dense mask, through the C++ row kernel (in bf16 runs on fp32 copies of q, k, v)
  or, where it cannot be built or the head size does not fit it, PyTorch's CPU flash-attention kernels;
- LM head + loss: only at supervised positions, in chunks, inside the root module's forward (so FSDP2
  gathers the head's weights): ``backends/forward.py`` and ``backends/loss.py``;
- LoRA linears (``fused_lora.py``): every precision (under bf16 autocast with the frozen base weight
  cast once); not over 4-bit (QLoRA) base layers, not under FSDP2;
- RMSNorm (``fused_norm.py``): fp32 inputs (32-true, and the residual stream under bf16-mixed);
- the SwiGLU gate (``fused_mlp.py``): 32-true only (an fp32 C++ kernel); neither under FSDP2.

Whatever is left out is said in the report, with the reason; the modules keep their own forward.
"""

from __future__ import annotations

import torch

from distill_lab.backends.base import Backend, BackendReport, RunTraits
from distill_lab.backends.cpu import attention
from distill_lab.backends.forward import token_loss_sum, unwrap


def _attention_modules(model) -> int:
    return sum(1 for m in unwrap(model).modules() if type(m).__name__.endswith("Attention") and hasattr(m, "head_dim"))


def fuse_ops(model, t: RunTraits) -> tuple[dict[str, int], list[str]]:
    """Swap in the fused LoRA / RMSNorm / SwiGLU ops that the run's precision, quantisation and strategy
    allow; returns (modules replaced per op, notes on what was left out)."""
    from distill_lab.backends.cpu.fused_lora import fuse_lora_layers
    from distill_lab.backends.cpu.fused_mlp import fuse_swiglu_mlps
    from distill_lab.backends.cpu.fused_norm import fuse_rms_norms

    replaced: dict[str, int] = {}
    notes: list[str] = []
    if t.strategy == "fsdp2":
        notes.append("fsdp2: LoRA, RMSNorm and SwiGLU keep their own forward (FSDP2 swaps parameters "
                     "around it)")
        return replaced, notes
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
    return replaced, notes


class CpuFastBackend(Backend):
    name = "cpu_fast"

    @property
    def sharded(self) -> bool:
        return self.traits.strategy == "fsdp2"

    def prepare(self, model) -> BackendReport:
        t, replaced, notes = self.traits, {}, []
        impl = unwrap(model).config._attn_implementation
        if impl in ("sdpa", "eager"):
            attention.use_segment_attention(model)
            replaced["attention"] = _attention_modules(model)
            kernel = attention.row_kernel_takes(unwrap(model).config)
            half = t.precision != "32-true" or next(unwrap(model).parameters()).dtype != torch.float32
            notes.append("attention: " + ("PyTorch's CPU flash-attention kernels" if not kernel else
                                          "C++ row kernel (fp32 on upcast copies of bf16 q/k/v)" if half else
                                          "C++ row kernel (fp32)"))
        else:
            notes.append(f"attention: the model's own {impl} (not sdpa or eager)")
        more, why = fuse_ops(model, t)
        return self.report({**replaced, **more}, notes + why)

    def loss_sum(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return token_loss_sum(model, batch)
