"""One op for the SwiGLU gate of gated MLPs (Llama, Qwen, Mistral, SmolLM): ``down(silu(gate(x)) * up(x))``.

PyTorch computes ``silu(g) * u`` as two ops and autograd differentiates each of them, five passes over
the [tokens, intermediate] activations (the widest in the model) for forward and backward.
``SwiGLUFn`` makes them two, with the C++ kernel ``backends/cpu/kernels/swiglu.cpp``.

``fuse_swiglu_mlps`` swaps the ``forward`` only of modules with ``gate_proj``, ``up_proj`` and
``down_proj`` whose own forward agrees with the fused one on a probe input (an MLP with another
activation or another wiring keeps its own). At run time the op steps aside (the module's own forward
runs) unless the activations are fp32 on CPU with autocast off and the kernel could be built.
"""

from __future__ import annotations

import ctypes

import torch
from torch import nn

from distill_lab.backends.cpu import cpu_kernels
from distill_lab.backends.cpu.forward_swap import swap_forwards

_P, _N, _I = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
_SIGNATURES = {"swiglu_forward": [_P, _P, _P, _N, _I], "swiglu_backward": [_P, _P, _P, _P, _P, _N, _I]}


def _lib():
    return cpu_kernels.load("swiglu", _SIGNATURES)


class SwiGLUFn(torch.autograd.Function):
    """``silu(g) * u`` for fp32 CPU tensors of one shape."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        g, u = g.contiguous(), u.contiguous()
        h = torch.empty_like(g)
        _lib().swiglu_forward(g.data_ptr(), u.data_ptr(), h.data_ptr(), g.numel(), torch.get_num_threads())
        ctx.save_for_backward(g, u)
        return h

    @staticmethod
    def backward(ctx, dh: torch.Tensor):
        g, u = ctx.saved_tensors
        dh = dh.contiguous()
        dg, du = torch.empty_like(g), torch.empty_like(u)
        _lib().swiglu_backward(dh.data_ptr(), g.data_ptr(), u.data_ptr(), dg.data_ptr(), du.data_ptr(), g.numel(),
                               torch.get_num_threads())
        return dg, du


def _fusable_now(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
            and _lib() is not None)


def _fused(mlp, x: torch.Tensor) -> torch.Tensor:
    return mlp.down_proj(SwiGLUFn.apply(mlp.gate_proj(x), mlp.up_proj(x)))


def _fused_forward(mlp, own_forward, x: torch.Tensor) -> torch.Tensor:
    if not _fusable_now(x):
        return own_forward(x)
    return _fused(mlp, x)


def _computes_swiglu(mlp) -> bool:
    """Does the module's own forward equal the fused one on a probe input (with its real weights)?"""
    weight = getattr(mlp.gate_proj, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dtype != torch.float32 or weight.device.type != "cpu":
        return False
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, weight.shape[-1], generator=g).mul_(3)  # weight: [intermediate, hidden]
    with torch.no_grad():
        own = mlp.forward(probe)
        ours = _fused(mlp, probe)
    return own.shape == ours.shape and torch.allclose(own, ours, rtol=1e-4, atol=1e-5)


def fuse_swiglu_mlps(model) -> int:
    """Swap the forward of every gated MLP that computes ``down(silu(gate(x)) * up(x))``; returns how many."""
    if _lib() is None:
        return 0

    def wanted(module) -> bool:
        return all(isinstance(getattr(module, a, None), nn.Module) for a in ("gate_proj", "up_proj", "down_proj")) \
            and _computes_swiglu(module)

    return swap_forwards(model, wanted, _fused_forward)
