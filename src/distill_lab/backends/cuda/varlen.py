"""Variable-length ("varlen") attention for packed and padding-free batches on CUDA.

**The batch contract** (``stages/train/packing.py``, ``pack_batch``): a packed micro-batch [S, T] also carries
``cu_seqlens`` (int32 [K + 1]: the boundaries of every row, and of each sequence's trailing padding, in
the flattened stream of S x T tokens) and ``max_seqlen``. ``varlen_inputs`` turns it into the model's
forward kwargs: ``input_ids``/``position_ids`` flattened to [1, S x T] (positions restart at every row,
so RoPE sees each row from 0) plus transformers' own flash-attention kwargs ``cu_seq_lens_q/k`` and
``max_length_q/k``. A token attends causally within its own segment only, never across rows.

**The implementations**, registered with transformers' ``AttentionInterface`` under one name each (the
model's ``config._attn_implementation`` records which one a run uses; ``choose_backend`` picks once):

- ``distill_varlen_fa`` (backend ``flash``): ``flash_attn.flash_attn_varlen_func`` when the flash-attn
  package is installed (one kernel over all segments). Its registered name must not contain "flash":
  transformers (5.17 to 5.24 at least, ``utils/generic.py::is_flash_attention_requested``) reads any
  attention name containing "flash" as a request for its own flash-attention integration, and
  ``set_attn_implementation`` then fails looking for a kernel of that name;
- ``distill_varlen_flex``: PyTorch's flex attention with a document mask (a ``BlockMask`` built once per
  forward from ``cu_seqlens``, shared by every layer), through transformers' own flex forward (compiled
  once); blocks of the mask that lie entirely across rows are skipped, so the cost follows the rows;
- ``distill_varlen_sdpa``: one ``scaled_dot_product_attention`` call with a block-diagonal causal
  boolean mask ([N, N]; memory-efficient kernel) -- the fallback when neither of the others exists.

None of them loops over rows in Python. Each casts q, k and v once to one dtype first
(``backends/attention_dtype.py``: under bf16 autocast an fp32-weight student hands q and k in fp32 and v in
bf16; flash and compiled flex refuse mixed dtypes). Without ``cu_seq_lens_q`` (padded batches, generation) each
is transformers' sdpa attention with the mask transformers built. On CPU training keeps its own row
attention (``backends/cpu/attention.py``); flex attention has no backward on CPU, so tests there check the
flex path's forward and the SDPA path's forward and backward against per-row SDPA.
"""

from __future__ import annotations

import importlib.util
import logging
import weakref
from typing import Any

import torch
import torch.nn.functional as F

from distill_lab.backends.attention_dtype import common_dtype

log = logging.getLogger(__name__)

PREFIX = "distill_varlen_"
BACKENDS = ("flash", "flex", "sdpa")
# the name each backend registers under (after PREFIX): never one containing "flash" (module docstring)
_REGISTERED = {"flash": "fa", "flex": "flex", "sdpa": "sdpa"}


def attention_name(backend: str) -> str:
    """The attention implementation name ``backend`` is registered under with transformers."""
    return PREFIX + _REGISTERED[backend]


# ---------------------------------------------------------------------------------- batch contract
def varlen_inputs(batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Forward kwargs of a packed batch for a ``distill_varlen_*`` model (see the module docstring)."""
    ids, pos, cu = batch["input_ids"], batch["position_ids"], batch["cu_seqlens"]
    if int(cu[-1]) != ids.numel():
        raise ValueError(f"cu_seqlens ends at {int(cu[-1])}, but the batch holds {ids.numel()} tokens")
    m = int(batch["max_seqlen"])
    return {"input_ids": ids.reshape(1, -1), "position_ids": pos.reshape(1, -1), "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu, "max_length_q": m, "max_length_k": m}


def document_ids(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """[N] segment index of every token."""
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    return torch.repeat_interleave(torch.arange(len(lengths), device=cu_seqlens.device), lengths)


# ------------------------------------------------------------------------------- the attention ops
class _PerForward:
    """The mask of the current forward: every layer gets the same ``cu_seqlens`` tensor, so the mask
    is built once and reused while that tensor lives (also for the recompute of checkpointed layers)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: Any = None

    def get(self, cu: torch.Tensor, kind: str, build):
        ref, k = (self.key or (None, None))
        if ref is not None and ref() is cu and k == kind:
            return self.value
        self.value = build()
        self.key = (weakref.ref(cu), kind)
        return self.value


_MASKS = _PerForward()


def block_diagonal_causal_mask(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """[N, N] bool: query i may see key j iff both lie in one segment and j <= i."""
    doc = document_ids(cu_seqlens)
    n = doc.numel()
    idx = torch.arange(n, device=doc.device)
    return (doc[:, None] == doc[None, :]) & (idx[None, :] <= idx[:, None])


def document_block_mask(cu_seqlens: torch.Tensor, n: int):
    from torch.nn.attention.flex_attention import create_block_mask

    doc = document_ids(cu_seqlens)

    def causal_document(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (kv_idx <= q_idx)

    # on CUDA compiled: the eager builder evaluates the mask on all N x N pairs at once (GBs at 24k tokens)
    return create_block_mask(causal_document, None, None, n, n, device=cu_seqlens.device,
                             _compile=cu_seqlens.device.type == "cuda")


def _sdpa_varlen(query, key, value, cu, scaling, dropout):
    mask = _MASKS.get(cu, "sdpa", lambda: block_diagonal_causal_mask(cu))
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # CUDA's memory-efficient kernel (the one that takes a mask) has no grouped heads
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask[None, None], dropout_p=dropout,
                                         scale=scaling)
    return out.transpose(1, 2).contiguous()


def spans_attention(query, key, value, spans: list[tuple[int, int, int]], scaling):
    """[B, H, T, D] q/k/v and ``(sequence, start, end)`` rows (contiguous from 0 in each sequence, as
    ``backends/cpu/attention.py`` checks) -> [B, T, H, D]: the batch flattened to one sequence, every row and
    every trailing padding its own segment, one ``_sdpa_varlen`` call; padding after a sequence's last
    row gets zero output (and so passes no gradient), as on CPU."""
    b_, _, t, d = query.shape
    bounds = {b * t for b in range(b_ + 1)}
    ends = [0] * b_
    for b, start, end in spans:
        bounds |= {b * t + start, b * t + end}
        ends[b] = max(ends[b], end)
    cu = torch.tensor(sorted(bounds), dtype=torch.int32, device=query.device)
    in_rows = torch.arange(t, device=query.device)[None, :] < torch.tensor(ends, device=query.device)[:, None]

    def flat(x):
        return x.transpose(0, 1).reshape(1, x.shape[1], b_ * t, d)

    out = _sdpa_varlen(flat(query), flat(key), flat(value), cu, scaling, 0.0)  # [1, B x T, H, D]
    return out.reshape(b_, t, out.shape[2], d) * in_rows[:, :, None, None]


def _flex_varlen(module, query, key, value, cu, scaling, dropout):
    if dropout:
        raise ValueError(f"{attention_name('flex')}: attention dropout is not supported (got {dropout})")
    block_mask = _MASKS.get(cu, "flex", lambda: document_block_mask(cu, query.shape[2]))
    if query.device.type == "cpu":  # flex attention is not compiled for CPU here (tests: forward only)
        from torch.nn.attention.flex_attention import flex_attention

        out = flex_attention(query, key, value, block_mask=block_mask, scale=scaling,
                             enable_gqa=query.shape[1] != key.shape[1])
        return out.transpose(1, 2).contiguous()
    from transformers.integrations.flex_attention import flex_attention_forward

    out, _ = flex_attention_forward(module, query, key, value, block_mask, scaling=scaling)
    return out


def _flash_varlen(query, key, value, cu, max_len, scaling, dropout):
    from flash_attn import flash_attn_varlen_func

    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # [N, heads, D]
    out = flash_attn_varlen_func(q, k, v, cu, cu, max_len, max_len, dropout_p=dropout, softmax_scale=scaling,
                                 causal=True)
    return out.unsqueeze(0)  # [1, N, H, D]


def _make(backend: str):
    def varlen_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                         cu_seq_lens_q: torch.Tensor | None = None, max_length_q: int | None = None, **kwargs):
        """[1, H, N, D] q/k/v of a flattened packed batch -> ([1, N, H, D], None)."""
        if cu_seq_lens_q is None:
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                          scaling=scaling, **kwargs)
        if query.shape[0] != 1:
            raise ValueError(f"{attention_name(backend)}: cu_seq_lens_q needs the batch flattened to [1, N] "
                             f"(varlen_inputs), got a batch of {query.shape[0]}")
        cu = cu_seq_lens_q.to(device=query.device, dtype=torch.int32)
        query, key, value = common_dtype(query, key, value)
        if backend == "flash":
            return _flash_varlen(query, key, value, cu, int(max_length_q), scaling, dropout), None
        if backend == "flex":
            return _flex_varlen(module, query, key, value, cu, scaling, dropout), None
        return _sdpa_varlen(query, key, value, cu, scaling, dropout), None

    return varlen_attention


# ------------------------------------------------------------------------------ choice and switch
def available(backend: str, device: torch.device | str = "cuda") -> bool:
    if backend == "flash":
        return torch.device(device).type == "cuda" and importlib.util.find_spec("flash_attn") is not None
    if backend == "flex":
        return importlib.util.find_spec("torch.nn.attention.flex_attention") is not None
    return backend == "sdpa"


def choose_backend(device: torch.device | str = "cuda", wanted: str = "auto") -> str:
    """The first available of flash, flex, sdpa (or ``wanted``, which must be available)."""
    if wanted != "auto":
        if wanted not in BACKENDS:
            raise ValueError(f"varlen attention backend {wanted!r}: expected auto or one of {', '.join(BACKENDS)}")
        if not available(wanted, device):
            raise RuntimeError(f"varlen attention backend {wanted!r} is not available on {device}")
        return wanted
    return next(b for b in BACKENDS if available(b, device))


def register(backend: str) -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from distill_lab.backends.maskless import MASKLESS

    def mask(*args, **kwargs):  # inside maskless() the segments are authoritative: no [N, N] mask built
        return None if MASKLESS.active else sdpa_mask(*args, **kwargs)

    name = attention_name(backend)
    AttentionInterface.register(name, _make(backend))
    AttentionMaskInterface.register(name, mask)
    return name


def use_varlen_attention(model, backend: str) -> str:
    """Switch a model (peft wrapper or not) to ``backend``'s varlen attention; returns its name."""
    name = register(backend)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.set_attn_implementation(name)
    log.info("attention: %s (packed batches as one varlen sequence; chosen once for this run)", name)
    return name


def is_varlen(model) -> bool:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(inner.config._attn_implementation).startswith(PREFIX)
