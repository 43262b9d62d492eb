"""LM head + cross-entropy over the supervised positions, in chunks, with a memory peak of one chunk.

The plain path, ``F.cross_entropy(lm_head(hidden).float(), targets)``, holds logits of [N, V] in the
compute dtype, their fp32 copy and the fp32 log-softmax (and the same again in backward): for Qwen3's
vocabulary (151,936) and 16k supervised tokens that is 25-30 GB. ``linear_cross_entropy_sum`` runs the
head on ``chunk_size`` rows at a time and never holds more than one chunk of logits.

**Gradients are computed in the forward pass**, chunk by chunk, while the chunk's logits exist: the loss
is a sum, so its gradient with respect to the hidden states and the head is known up to the scalar that
backward brings (``grad_output``), and backward only scales what forward stored. That is three head
matmuls per chunk (logits, d_hidden, d_weight when the head trains) where recomputing the logits in
backward would cost four; the peak is the same one chunk. (liger-kernel's fused linear cross-entropy
does the same on CUDA with Triton kernels; it is not used here because no test machine of this project
can run it: see ``tests/gpu/``.) Without grad mode (validation) forward computes the loss only.

Memory held besides the inputs: one chunk's logits (fp32, plus the compute-dtype matmul output while it
is being upcast), d_hidden [N, H] in the hidden states' dtype (the size of the input it is the gradient
of), and, only when the head itself is trained, an fp32 d_weight [V, H].

``supervised_loss_sum`` runs the decoder and this loss inside the **root module's forward** (the root's
``forward`` is swapped for one call), so that under FSDP2 the root's hooks gather the parameters it owns
(embeddings, final norm, LM head) before the head runs, and reduce-scatter their gradients after.

This is written here rather than taken from a library: liger-kernel's version needs Triton on CUDA and
PyTorch has no chunked linear cross-entropy; the training must run on CPU too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_CHUNK = 1024  # rows of [V] logits at a time: 1024 x 151,936 fp32 = 0.62 GB


def _weight_and_bias(head: nn.Module | torch.Tensor, bias: torch.Tensor | None):
    if isinstance(head, torch.Tensor):
        return head, bias
    if isinstance(head, nn.Linear):
        if bias is not None:
            raise ValueError("linear_cross_entropy_sum: pass bias only with a weight tensor, not with a module")
        return head.weight, head.bias
    raise TypeError(f"linear_cross_entropy_sum: the LM head must be an nn.Linear or a weight tensor, got "
                    f"{type(head).__name__} (a quantised or adapter-wrapped head is not supported)")


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """sum_i CE(hidden[i] @ weight.T + bias, targets[i]) over chunks of rows; see the module docstring."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_size: int, grad_wanted: bool, mark=None):
        need_h, need_w, need_b = (grad_wanted and x for x in ctx.needs_input_grad[:3])
        n = hidden.shape[0]
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        marked = torch.zeros((), dtype=torch.float32, device=hidden.device)  # the part over ``mark`` (no grad)
        d_hidden = torch.empty_like(hidden) if need_h else None
        d_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        d_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        for start in range(0, n, chunk_size):
            h = hidden[start:start + chunk_size]
            t = targets[start:start + chunk_size]
            logits = F.linear(h, weight, bias).float()  # [c, V]: the only [., V] tensors alive are this chunk's
            lse = torch.logsumexp(logits, dim=-1)
            ce = lse - logits.gather(1, t[:, None]).squeeze(1)
            loss += ce.sum()
            if mark is not None:
                marked += ce[mark[start:start + chunk_size]].sum()
            if not (need_h or need_w or need_b):
                continue
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
            g = probs.to(weight.dtype)
            if need_h:
                d_hidden[start:start + chunk_size] = g @ weight
            if need_w:
                d_weight += (g.t() @ h.to(weight.dtype)).float()
            if need_b:
                d_bias += probs.sum(0)
            del logits, probs, g
        ctx.save_for_backward(*(x for x in (d_hidden, d_weight, d_bias) if x is not None))
        ctx.have = (need_h, need_w, need_b)
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.mark_non_differentiable(marked)
        return loss, marked

    @staticmethod
    def backward(ctx, grad_loss, _grad_marked):
        saved = iter(ctx.saved_tensors)
        grads = []
        for have, dtype in zip(ctx.have, ctx.dtypes, strict=True):
            grads.append((next(saved) * grad_loss).to(dtype) if have else None)
        return (*grads, None, None, None, None)


def linear_cross_entropy_sum(hidden: torch.Tensor, head: nn.Module | torch.Tensor, targets: torch.Tensor, *,
                             bias: torch.Tensor | None = None, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    """The loss of ``linear_cross_entropy_sums`` (below) alone."""
    return linear_cross_entropy_sums(hidden, head, targets, bias=bias, chunk_size=chunk_size)[0]


def linear_cross_entropy_sums(hidden: torch.Tensor, head: nn.Module | torch.Tensor, targets: torch.Tensor,
                              mark: torch.Tensor | None = None, *, bias: torch.Tensor | None = None,
                              chunk_size: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over the N rows of ``cross_entropy(head(hidden[i]), targets[i])`` as an fp32 scalar, its part over
    ``mark``).

    ``hidden`` [N, H] (the supervised positions only); ``head`` an ``nn.Linear`` [V, H] or its weight
    (``bias`` then optional); ``targets`` [N] token ids in [0, V) (no ignore index: select first).
    Equal to ``F.cross_entropy(F.linear(hidden, W, b).float(), targets, reduction="sum")`` and its
    gradients, computed ``chunk_size`` rows at a time.

    The second value is the sum over the rows where ``mark`` [N] (bool) holds, without gradient (zero when
    ``mark`` is None): the loss of a subset of the positions (the final answer's tokens)
    from the same logits, so logging it costs no second forward.
    """
    weight, bias = _weight_and_bias(head, bias)
    if chunk_size < 1:
        raise ValueError(f"linear_cross_entropy_sum: chunk_size must be >= 1, got {chunk_size}")
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"linear_cross_entropy_sum: hidden must be [N, H] and targets [N]; got "
                         f"{tuple(hidden.shape)} and {tuple(targets.shape)}")
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy_sum: hidden size {hidden.shape[1]} != head input size "
                         f"{weight.shape[1]}")
    if mark is not None and mark.shape != targets.shape:
        raise ValueError(f"linear_cross_entropy_sums: mark must be [N] like targets; got {tuple(mark.shape)}")
    return ChunkedLinearCrossEntropy.apply(hidden, weight, bias, targets.long(), chunk_size,
                                           torch.is_grad_enabled(), None if mark is None else mark.bool())


def _unwrap(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supervised_loss_sum(model: nn.Module, inputs: dict[str, Any], supervised: torch.Tensor, targets: torch.Tensor,
                        *, chunk_size: int = DEFAULT_CHUNK, mark: torch.Tensor | None = None):
    """Decoder over ``inputs``, then the chunked head + loss at the positions where ``supervised``
    [B, T-1] holds (targets [N] = the next tokens there), all inside one call of ``model`` (the root).
    With ``mark`` [N] (bool), returns ``(loss, loss over the marked positions)`` (the second without
    gradient; ``linear_cross_entropy_sums``).

    The root's ``forward`` is swapped for the duration of the call only: hooks registered on the root
    (FSDP2's parameter gathering, gradient reduction) run around it as around any forward.
    """
    lm = _unwrap(model)

    def root_forward(*args, **kwargs):
        if args:
            raise TypeError("supervised_loss_sum: the model is called with keyword arguments only")
        hidden = lm.model(**kwargs, use_cache=False).last_hidden_state  # [B, T, H]
        if hidden.shape[0] != supervised.shape[0]:  # a packed batch run flattened (varlen): back to [S, T, H]
            hidden = hidden.reshape(supervised.shape[0], supervised.shape[1] + 1, hidden.shape[-1])
        h = hidden[:, :-1][supervised]
        if mark is None:
            return linear_cross_entropy_sum(h, lm.lm_head, targets, chunk_size=chunk_size)
        return linear_cross_entropy_sums(h, lm.lm_head, targets, mark, chunk_size=chunk_size)

    own = model.__dict__.get("forward")
    model.forward = root_forward
    try:
        return model(**inputs)
    finally:
        if own is None:
            del model.forward
        else:
            model.forward = own
