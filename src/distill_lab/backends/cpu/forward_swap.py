"""Swapping a module's ``forward`` for a fused one, per instance, keeping the module's own at hand.

The fused ops (``fused_lora.py``, ``fused_norm.py``, ``fused_mlp.py``) leave parameters, state dicts and
module types alone: only the instance's ``forward`` changes, and the fused forward gets the module's
own forward to fall back on wherever the fused op does not apply.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from torch import nn

OWN = "_distill_own_forward"  # the module's original forward, once swapped


def swap_forwards(model: nn.Module, wanted: Callable[[nn.Module], bool], fused: Callable[..., object]) -> int:
    """For each module of ``model`` where ``wanted(module)`` holds, ``forward(*a, **k)`` becomes
    ``fused(module, own_forward, *a, **k)``. Modules swapped before are skipped (so ``wanted`` is not
    asked twice); returns how many were swapped now."""
    n = 0
    for module in model.modules():
        if hasattr(module, OWN) or not wanted(module):
            continue
        setattr(module, OWN, module.forward)
        module.forward = types.MethodType(lambda self, *a, **k: fused(self, getattr(self, OWN), *a, **k), module)
        n += 1
    return n
