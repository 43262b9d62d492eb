"""The optimizers ``optimizer.name`` can pick: one function each, registered here and nowhere else.

A builder takes the trainable parameters, the ``optimizer`` config and whether FSDP2 shards them, and
returns a ``torch.optim.Optimizer``; the config's validation and the Lightning module both read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch


class OptimizerSettings(Protocol):
    """What a builder reads of the ``optimizer`` config (``stages/train/config.py``: ``OptimizerConfig``,
    which validates ``name`` against this table; typed here by shape, so that this module sits below the
    config and imports nothing of it)."""

    lr: float
    weight_decay: float
    betas: list[float]
    eps: float


Builder = Callable[["list[torch.nn.Parameter]", OptimizerSettings, bool], "torch.optim.Optimizer"]
OPTIMIZERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        OPTIMIZERS[name] = fn
        return fn
    return deco


@register("adamw")
def adamw(params, oc: OptimizerSettings, fsdp: bool):
    import torch

    # foreach kernels group tensors by device and dtype; DTensor shards under FSDP2 take the plain loop
    return torch.optim.AdamW(params, lr=oc.lr, betas=tuple(oc.betas), eps=oc.eps, weight_decay=oc.weight_decay,
                             foreach=not fsdp)


@register("adamw_8bit")
def adamw_8bit(params, oc: OptimizerSettings, fsdp: bool):
    import bitsandbytes as bnb

    return bnb.optim.AdamW8bit(params, lr=oc.lr, betas=tuple(oc.betas), eps=oc.eps, weight_decay=oc.weight_decay)


@register("adafactor")
def adafactor(params, oc: OptimizerSettings, fsdp: bool):
    """Factored second moments (a row and a column vector per matrix): optimizer state of O(n + m) per
    n x m weight instead of 2nm, for full fine-tunes that do not fit with AdamW. ``betas``/``eps`` do not
    apply (torch's defaults: beta2 decay -0.8, eps (None, 1e-3))."""
    import torch

    return torch.optim.Adafactor(params, lr=oc.lr, weight_decay=oc.weight_decay, foreach=not fsdp)


def build_optimizer(params, oc: OptimizerSettings, fsdp: bool = False):
    return OPTIMIZERS[oc.name](params, oc, fsdp)
