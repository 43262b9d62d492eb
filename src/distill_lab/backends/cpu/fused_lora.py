"""One autograd op per LoRA linear: ``y = x W^T + b + s (x A^T) B^T``.

peft computes ``base(x) + lora_B(lora_A(x)) * s``: besides the three matmuls, a full-size multiply
and add in the forward, their gradients in the backward, and a full-size add where autograd sums the
two gradients of ``x``. Here, in fp32 (and fp64), the adapter is folded into a weight-sized matrix
``W' = W + s B A`` (a [out, in] product, small next to the activations) so that the output is one GEMM,
``x W'^T``, and the gradient of ``x`` another, ``g W'``. In half precision folding would round the
adapter's small update into W's precision, so there the LoRA product is accumulated into the base GEMM's
output instead (``addmm_``, alpha = s), and the gradient of ``x`` likewise (``g W + (s g B) A``). The
adapter's own gradients, ``s (g B)^T x`` and ``s g^T (x A^T)``, are rank-sized either way.

Parameters, state dicts and peft adapters are unchanged: only each layer's ``forward`` is swapped, and
the layer falls back to peft's own forward whenever the fused op does not apply (adapters disabled or
merged, several adapters, a LoRA variant such as DoRA, dropout, a non-``nn.Linear`` base such as
bitsandbytes 4-bit; ``backends/cpu/backend.py`` installs it only where the run's settings allow it).

Under autocast (bf16-mixed) the op computes what autocast does with peft's linears, in the autocast
dtype, without re-casting the frozen base weight at every forward (its cast copy is kept) and without
peft's full-size scale-and-add.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from distill_lab.backends.cpu.forward_swap import swap_forwards


class LoraLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, a, b, scale: float):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if x.dtype in (torch.float32, torch.float64):
            folded, xa = torch.addmm(weight, b, a, alpha=scale), None  # W' = W + s B A
        else:
            folded, xa = None, x2 @ a.t()  # [N, r]
        w = weight if folded is None else folded
        out = torch.addmm(bias, x2, w.t()) if bias is not None else x2 @ w.t()
        if xa is not None:
            out.addmm_(xa, b.t(), alpha=scale)
        ctx.save_for_backward(x2, weight, a, b, folded, xa)
        ctx.scale, ctx.shape = scale, shape
        return out.view(*shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, g):
        x2, weight, a, b, folded, xa = ctx.saved_tensors
        s = ctx.scale
        g2 = g.reshape(-1, g.shape[-1])
        gxa = (g2 @ b).mul_(s)  # [N, r]: gradient of x A^T
        gx = gw = gbias = ga = gb = None
        if ctx.needs_input_grad[0]:
            gx = (g2 @ folded if folded is not None else (g2 @ weight).addmm_(gxa, a)).view(ctx.shape)
        if ctx.needs_input_grad[1]:
            gw = g2.t() @ x2
        if ctx.needs_input_grad[2]:
            gbias = g2.sum(0)
        if ctx.needs_input_grad[3]:
            ga = gxa.t() @ x2
        if ctx.needs_input_grad[4]:
            gb = (g2.t() @ (xa if xa is not None else x2 @ a.t())).mul_(s)
        return gx, gw, gbias, ga, gb, None


def _fusable_now(layer, device_type: str = "cpu") -> str | None:
    """The active adapter when the fused op computes what peft would, else None."""
    if layer.disable_adapters or layer.merged:
        return None
    active = [n for n in layer.active_adapters if n in layer.lora_A]
    if len(active) != 1 or active[0] in getattr(layer, "lora_variant", {}):
        return None
    name = active[0]
    if not isinstance(layer.lora_dropout[name], nn.Identity):
        return None
    return name


def _fused_forward(layer, peft_forward, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    name = None if (args or kwargs) else _fusable_now(layer, x.device.type)
    if name is None:
        return peft_forward(x, *args, **kwargs)
    base = layer.base_layer
    a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
    scale = float(layer.scaling[name])
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return _autocast_forward(x, base, a, b, scale, torch.get_autocast_dtype(device))
    if x.dtype != a.dtype or base.weight.dtype != a.dtype:
        return peft_forward(x, *args, **kwargs)
    return LoraLinearFn.apply(x, base.weight, base.bias, a, b, scale)


_HALF = "_distill_half_weight"  # (dtype, weight version, the weight in that dtype) on a frozen base layer


def _half_weight(base: nn.Linear, dtype: torch.dtype) -> torch.Tensor:
    """The base weight in ``dtype``. A frozen weight is cast once and kept (until it is written to, which
    bumps its version): autocast would cast it again at every forward."""
    w = base.weight
    if w.requires_grad:
        return w.to(dtype)
    cached = getattr(base, _HALF, None)
    if cached is None or cached[0] != dtype or cached[1] != w._version:
        cached = (dtype, w._version, w.detach().to(dtype))
        setattr(base, _HALF, cached)
    return cached[2]


def _autocast_forward(x, base: nn.Linear, a, b, scale: float, dtype: torch.dtype) -> torch.Tensor:
    """What autocast computes for peft's three linears (inputs and weights rounded to ``dtype``, products
    in ``dtype``), as one op: the adapter's product accumulates into the base GEMM's output, as in the
    half-precision path of ``LoraLinearFn``. The casts of ``a`` and ``b`` are differentiable: their fp32
    parameters get the gradients."""
    bias = None if base.bias is None else base.bias.to(dtype)
    with torch.autocast(x.device.type, enabled=False):
        return LoraLinearFn.apply(x.to(dtype), _half_weight(base, dtype), bias, a.to(dtype), b.to(dtype), scale)


def fuse_lora_layers(model) -> int:
    """Swap the forward of every peft LoRA ``Linear`` over a plain ``nn.Linear``; returns how many."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    return swap_forwards(model, lambda m: isinstance(m, LoraLinear) and type(m.base_layer) is nn.Linear,
                         _fused_forward)
