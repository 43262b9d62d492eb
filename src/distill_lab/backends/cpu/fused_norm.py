"""One autograd op per RMSNorm: ``y = x / sqrt(mean(x^2) + eps) * w``.

transformers writes RMSNorm as separate tensor ops (square, mean, rsqrt, two multiplies), and autograd
differentiates each of them: about four passes over the activations forward and seven backward, plus
their temporaries. ``RMSNormFn`` takes one reduction and two multiplies forward, and one reduction and
two fused multiply-adds backward. A decoder runs two norms per layer, four in Qwen3 (q_norm and k_norm),
so on a small student this is a visible share of a training step.

``fuse_rms_norms`` swaps only the ``forward`` of modules that compute exactly this formula: each
candidate (a ``*RMSNorm`` with a ``weight`` and a ``variance_epsilon``) is first run on a probe input and
kept only when its own forward agrees. Variants such as Gemma's ``x * (1 + w)`` fail the probe and keep
their own forward. At run time the op steps aside (the module's own forward runs) unless input and
weight are fp32: transformers' half-precision norm rounds in a particular order that this op does not
reproduce. Under bf16 autocast the decoder's norms read the fp32 residual stream and fuse; norms fed a
bf16 projection (Qwen3's q_norm and k_norm) keep their own forward.
"""

from __future__ import annotations

import torch
from torch import nn

from distill_lab.backends.cpu.forward_swap import swap_forwards


class RMSNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps: float):
        d = x.shape[-1]
        rstd = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(d).add_(eps).rsqrt_()  # [..., 1]
        ctx.save_for_backward(x, weight, rstd)
        return (x * rstd).mul_(weight)

    @staticmethod
    def backward(ctx, g):
        x, weight, rstd = ctx.saved_tensors
        gw = gx = None
        if ctx.needs_input_grad[1]:
            gw = (g * x * rstd).reshape(-1, x.shape[-1]).sum(0)
        if ctx.needs_input_grad[0]:
            gy = g * weight
            # d/dx of x * rstd: rstd * gy - x * rstd^3 * <gy, x> / d
            coef = torch.linalg.vecdot(gy, x).unsqueeze(-1).mul_(rstd.pow(3)).div_(-x.shape[-1])
            gx = gy.mul_(rstd).addcmul_(x, coef)
        return gx, gw, None


def _fusable_now(norm, x: torch.Tensor) -> bool:
    """fp32 input and weight. Under autocast too: transformers' norm computes in fp32 and rounds only to
    the input's dtype, so for an fp32 input (the residual stream under bf16 autocast) both agree."""
    return x.dtype == torch.float32 and norm.weight.dtype == torch.float32


def _fused_forward(norm, own_forward, x: torch.Tensor) -> torch.Tensor:
    if not _fusable_now(norm, x):
        return own_forward(x)
    return RMSNormFn.apply(x, norm.weight, float(norm.variance_epsilon))


def _computes_rms_norm(norm) -> bool:
    """Does the module's own forward equal ``RMSNormFn`` on a probe input (with its real weight)?"""
    w = norm.weight
    if not isinstance(w, nn.Parameter) or w.dim() != 1 or w.dtype != torch.float32:
        return False
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(3, w.numel(), generator=g).mul_(3).to(w.device)
    with torch.no_grad():
        own = norm.forward(probe)
        ours = RMSNormFn.apply(probe, w, float(norm.variance_epsilon))
    return own.shape == ours.shape and torch.allclose(own, ours, rtol=1e-5, atol=1e-6)


def fuse_rms_norms(model) -> int:
    """Swap the forward of every RMSNorm that computes the plain formula; returns how many."""
    def wanted(module) -> bool:
        return type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon") \
            and _computes_rms_norm(module)

    return swap_forwards(model, wanted, _fused_forward)
