"""Counting the bytes that PyTorch ops allocate, without running them (fake tensors).

``LiveBytes`` is a dispatch mode that adds each new storage an op returns to a running total and takes
it off when Python frees the storage; ``peak`` is the largest total seen. Under ``FakeTensorMode`` the
ops only compute shapes, so the memory of a 25 GB computation is measured in milliseconds, with the
lifetimes the real program has (the same Python references keep the same tensors alive).
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveBytes(TorchDispatchMode):
    def __init__(self, *existing: torch.Tensor):
        super().__init__()
        self.now = self.peak = 0
        self._seen: set[int] = set()
        self._keep = [t.untyped_storage() for t in existing]  # views of inputs are not new memory
        self._seen.update(id(s) for s in self._keep)

    def _free(self, key: int, n: int) -> None:
        self._seen.discard(key)
        self.now -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if id(st) in self._seen:
                    continue
                n = st.nbytes()
                self._seen.add(id(st))
                self.now += n
                weakref.finalize(st, self._free, id(st), n)
        self.peak = max(self.peak, self.now)
        return out
