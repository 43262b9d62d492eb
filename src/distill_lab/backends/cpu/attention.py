"""Row-exact attention for training batches without materialised masks.

transformers turns a padding mask or restarting ``position_ids`` into a dense 4D mask per forward, and
SDPA with a dense mask cannot use its causal fast path (on CPU the masked kernel was about 2x slower
per call here). Training never needs those masks:

- **padded batches** (``data.padding_free=false``) are right-padded, so a plain causal mask already keeps
  every real token from seeing padding (pads come after it). Pad positions compute garbage that no
  label and no real position reads, so their gradient is exactly zero. The trainer simply passes no
  ``attention_mask``.
- **packed and padding-free batches** carry ``segments`` (one ``[start, end)`` per row, per sequence). The attention
  function ``distill_segments`` runs causal SDPA on each row's slice: a token never sees another row,
  and the cost is the sum of squared row lengths instead of the squared sequence length.

On CPU all rows of a layer run through one autograd op:

- ``KernelRowAttention`` in fp32, and for bf16 (autocast) on fp32 copies of q, k and v, its output cast
  back: the project's C++ kernel (``backends/cpu/kernels/row_attention.cpp``, built
  at first use by ``backends/cpu/cpu_kernels.py``). With the head sizes of small students it runs about twice
  as fast as PyTorch's CPU flash attention; it agrees with SDPA up to fp32 rounding.
- ``RowAttention`` otherwise (head sizes that are not a multiple of 16, no compiler, or
  ``DISTILL_LAB_CPU_KERNELS=0``): PyTorch's flash-attention kernels for CPU, called directly. They are the
  kernels ``scaled_dot_product_attention`` picks there (results are bit-identical), without a slice per
  row for q, k and v, whose backward would allocate and zero a full-size gradient for each row, and
  without concatenating the rows' outputs.

Other devices (a model switched to ``distill_segments`` by hand: the train stage gives CUDA runs the
varlen attention of ``backends/cuda/varlen.py``) run all rows in one block-diagonal SDPA call.

``distill_segments`` is registered with transformers' ``AttentionInterface``, and with its mask
interface as sdpa's mask: without ``segments`` (generation, a plain forward, a padding mask) it is
exactly transformers' sdpa attention; with them the segments are authoritative, and the trainer's
forward runs inside ``maskless()`` (``backends/maskless.py``) so that no mask is built at all.
"""

from __future__ import annotations

import ctypes

import torch

from distill_lab.backends.attention_dtype import common_dtype
from distill_lab.backends.maskless import MASKLESS

NAME = "distill_segments"


def _spans(segments: list[list[tuple[int, int]]], length: int) -> list[tuple[int, int, int]]:
    """``(sequence, start, end)`` per row, checked: contiguous from 0 (stages/train/packing.py), within the
    sequence; what follows the last row is padding."""
    out = []
    for b, rows in enumerate(segments):
        at = 0
        for start, end in rows:
            if start != at or not start < end <= length:
                raise ValueError(f"{NAME}: row [{start}, {end}) of sequence {b} does not follow at {at} "
                                 f"within length {length}")
            out.append((b, start, end))
            at = end
    return out


_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_CPU_FLASH_BACKWARD = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


class RowAttention(torch.autograd.Function):
    """Causal attention within each ``(sequence, start, end)`` row of [B, H, T, D] q/k/v (k/v may have
    fewer, grouped heads) -> [B, T, H, D]; positions after a sequence's last row get zeros."""

    @staticmethod
    def forward(ctx, q, k, v, spans: list[tuple[int, int, int]], scale: float | None):
        b_, h, t, d = q.shape
        out = q.new_zeros(b_, t, h, d)
        lse = q.new_zeros(b_, h, t, dtype=torch.promote_types(q.dtype, torch.float32))
        for b, s, e in spans:
            rows = (slice(b, b + 1), slice(None), slice(s, e))
            o, lse_row = _CPU_FLASH(q[rows], k[rows], v[rows], 0.0, True, scale=scale)
            out[b, s:e] = o[0].transpose(0, 1)
            lse[rows] = lse_row
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.spans, ctx.scale = spans, scale
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for b, s, e in ctx.spans:
            rows = (slice(b, b + 1), slice(None), slice(s, e))
            dq[rows], dk[rows], dv[rows] = _CPU_FLASH_BACKWARD(
                grad[b:b + 1, s:e].transpose(1, 2), q[rows], k[rows], v[rows], out[b:b + 1, s:e].transpose(1, 2),
                lse[rows], 0.0, True, scale=ctx.scale)
        return dq, dk, dv, None, None


_P, _I, _N, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_float
_STRIDED = [_P, _N, _N, _N]  # pointer, then strides of dims 0, 1, 2 (in elements)
_SHAPE = [_I, _I, _I, _N, _P, _I, _N, _F]  # H, Hk, D, T, spans, R, max_len, scale
_KERNEL_SIGNATURES = {
    "row_attention_forward": _STRIDED * 3 + _SHAPE + [_P, _P, _I],
    "row_attention_backward": _STRIDED * 3 + [_P] + _STRIDED + [_P] + _SHAPE + [_P, _P, _P, _I],
}


def _row_kernel():
    """The C++ row-attention library, or None (``backends/cpu/cpu_kernels.py``)."""
    from distill_lab.backends.cpu import cpu_kernels

    return cpu_kernels.load("row_attention", _KERNEL_SIGNATURES)


_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # half: computed in fp32 on upcast copies


def _kernel_fits(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    d = q.shape[-1]
    return (q.device.type == "cpu" and all(x.dtype in _KERNEL_DTYPES for x in (q, k, v)) and d % 16 == 0
            and d <= 1024 and q.shape[1] % k.shape[1] == 0 and _row_kernel() is not None)


def row_kernel_takes(config) -> bool:
    """Will segment attention of a model with this config run the C++ kernel (built or loaded now)?"""
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    d = getattr(config, "head_dim", None) or config.hidden_size // heads
    return d % 16 == 0 and d <= 1024 and heads % kv == 0 and _row_kernel() is not None


def _strided(x: torch.Tensor) -> list:
    x = x if x.stride(-1) == 1 else x.contiguous()
    return [x.data_ptr(), x.stride(0), x.stride(1), x.stride(2)], x


def _zero_tails(x: torch.Tensor, spans: list[tuple[int, int, int]]) -> torch.Tensor:
    """Zero [B, T, ...] positions after each sequence's last row (the kernel writes only rows)."""
    ends = [0] * x.shape[0]
    for b, _, e in spans:
        ends[b] = max(ends[b], e)
    for b, e in enumerate(ends):
        if e < x.shape[1]:
            x[b, e:] = 0
    return x


class KernelRowAttention(torch.autograd.Function):
    """``RowAttention`` in fp32 through the C++ kernel (``backends/cpu/kernels/row_attention.cpp``): scores,
    softmax and products in one register-tiled pass per 4 query rows. Same contract and results as
    ``RowAttention`` up to fp32 rounding (the sums run in another order)."""

    @staticmethod
    def forward(ctx, q, k, v, spans: list[tuple[int, int, int]], scale: float | None):
        b_, h, t, d = q.shape
        scale = d ** -0.5 if scale is None else scale
        table = torch.tensor(spans, dtype=torch.long)
        max_len = max(e - s for _, s, e in spans)
        (qa, q), (ka, k), (va, v) = _strided(q), _strided(k), _strided(v)
        out = q.new_empty(b_, t, h, d)
        lse = q.new_empty(b_, h, t)
        _row_kernel().row_attention_forward(*qa, *ka, *va, h, k.shape[1], d, t, table.data_ptr(), len(spans),
                                            max_len, scale, out.data_ptr(), lse.data_ptr(), torch.get_num_threads())
        _zero_tails(out, spans)
        ctx.save_for_backward(q, k, v, out, lse, table)
        ctx.scale, ctx.max_len, ctx.spans = scale, max_len, spans
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out, lse, table = ctx.saved_tensors
        b_, h, t, d = q.shape
        hk = k.shape[1]
        (qa, q), (ka, k), (va, v) = _strided(q), _strided(k), _strided(v)
        ga, grad = _strided(grad)  # [B, T, H, D]: strides of b, t, h
        dq, dk, dv = q.new_empty(b_, t, h, d), q.new_empty(b_, t, hk, d), q.new_empty(b_, t, hk, d)
        _row_kernel().row_attention_backward(*qa, *ka, *va, out.data_ptr(), *ga, lse.data_ptr(), h, hk, d, t,
                                             table.data_ptr(), len(ctx.spans), ctx.max_len, ctx.scale,
                                             dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), torch.get_num_threads())
        grads = (_zero_tails(x, ctx.spans).transpose(1, 2) for x in (dq, dk, dv))
        return (*grads, None, None)


def segment_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      segments: list[list[tuple[int, int]]] | None = None, **kwargs):
    """[B, H, T, D] query/key/value -> ([B, T, H, D] output, None), causal within each segment."""
    if segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    if dropout:
        raise ValueError(f"{NAME}: attention dropout is not supported with segments (got {dropout})")
    if len(segments) != query.shape[0]:
        raise ValueError(f"{NAME}: {len(segments)} segment lists for a batch of {query.shape[0]}")
    spans = _spans(segments, query.shape[2])
    query, key, value = common_dtype(query, key, value)
    if _kernel_fits(query, key, value):
        if query.dtype == torch.float32:
            return KernelRowAttention.apply(query, key, value, spans, scaling), None
        # bf16 autocast: the fp32 kernel on upcast copies (three casts a layer, each way); PyTorch's bf16
        # kernels copy and zero-fill every row's slices, which cost more than the casts here
        out = KernelRowAttention.apply(query.float(), key.float(), value.float(), spans, scaling)
        return out.to(query.dtype), None
    if query.device.type == "cpu" and _CPU_FLASH is not None:
        return RowAttention.apply(query, key, value, spans, scaling), None
    from distill_lab.backends.cuda.varlen import spans_attention

    return spans_attention(query, key, value, spans, scaling), None  # one call, no loop over rows


def register() -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def mask(*args, **kwargs):
        return None if MASKLESS.active else sdpa_mask(*args, **kwargs)

    AttentionInterface.register(NAME, segment_attention)
    AttentionMaskInterface.register(NAME, mask)
    return NAME


def use_segment_attention(model) -> None:
    """Switch a model (peft wrapper or not) to ``distill_segments`` for training."""
    register()
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner.set_attn_implementation(NAME)
    if next(inner.parameters()).device.type == "cpu":
        _row_kernel()  # build (or load) the CPU kernel now rather than inside the first training step
