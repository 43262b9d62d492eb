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
the layer falls back to peft's own forward whenever the fused op does not apply (autocast, adapters
disabled or merged, several adapters, a LoRA variant such as DoRA, dropout, a non-``nn.Linear`` base
such as bitsandbytes 4-bit).
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
    """The active adapter when the fused op computes exactly what peft would, else None."""
    if layer.disable_adapters or layer.merged or torch.is_autocast_enabled(device_type):
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
    if x.dtype != a.dtype or base.weight.dtype != a.dtype:
        return peft_forward(x, *args, **kwargs)
    return LoraLinearFn.apply(x, base.weight, base.bias, a, b, float(layer.scaling[name]))


def fuse_lora_layers(model) -> int:
    """Swap the forward of every peft LoRA ``Linear`` over a plain ``nn.Linear``; returns how many."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    return swap_forwards(model, lambda m: isinstance(m, LoraLinear) and type(m.base_layer) is nn.Linear,
                         _fused_forward)
