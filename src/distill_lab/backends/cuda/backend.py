"""The ``cuda_varlen`` backend: one varlen attention call over all rows of a packed or padding-free
batch (``varlen.py``: flash, flex or sdpa, the first available, chosen once), the chunked LM head + loss
at supervised positions (``backends/forward.py``), and the fused LoRA / RMSNorm ops where the run's
precision and strategy allow them (``backends/cpu/backend.py::fuse_ops``; the SwiGLU kernel is CPU only).
"""

from __future__ import annotations

import torch

from distill_lab.backends.base import Backend, BackendReport
from distill_lab.backends.cpu.backend import fuse_ops
from distill_lab.backends.cuda.varlen import choose_backend, use_varlen_attention
from distill_lab.backends.forward import token_loss_sum, unwrap


class CudaVarlenBackend(Backend):
    name = "cuda_varlen"

    def prepare(self, model) -> BackendReport:
        device = next(unwrap(model).parameters()).device
        name = use_varlen_attention(model, choose_backend(device))
        layers = sum(1 for m in unwrap(model).modules() if type(m).__name__.endswith("Attention") and hasattr(m, "head_dim"))
        more, why = fuse_ops(model, self.traits)
        return self.report({"attention": layers, **more}, [f"attention: {name}", *why])

    def loss_sum(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        return token_loss_sum(model, batch)
