"""backends/cuda/varlen.py on CPU: the batch contract from the collator, and the flex (forward) and
block-diagonal SDPA (forward and backward) paths against causal SDPA run on each row alone. The flash
path and compiled flex need CUDA: tests/gpu/ runs them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill_lab.backends.cuda import varlen
from distill_lab.backends.forward import token_loss_sum
from distill_lab.backends.maskless import maskless
from distill_lab.stages.train.packing import IGNORE, Example, pack_batch, pad_batch


def _examples(lengths, vocab=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(1, vocab, (n,), generator=g).tolist()
        labels = [IGNORE] * (n // 3) + ids[n // 3:]
        out.append(Example(row_id=str(i), input_ids=ids, labels=labels))
    return out


def test_pack_batch_carries_cu_seqlens_over_rows_and_padding_tails():
    exs = _examples([30, 50, 20, 45, 12])
    b = pack_batch(exs, 0, max_length=80)
    s, t = b["input_ids"].shape
    cu = b["cu_seqlens"].tolist()
    assert b["cu_seqlens"].dtype == torch.int32 and cu[0] == 0 and cu[-1] == s * t
    expected = set()
    for seq, start, end in b["segments"].tolist():
        expected |= {seq * t + start, seq * t + end}
    assert expected <= set(cu)  # every row boundary
    assert set(cu) - expected <= {seq * t for seq in range(s + 1)}  # plus the ends of padded sequences
    lengths = [cu[i + 1] - cu[i] for i in range(len(cu) - 1)]
    assert int(b["max_seqlen"]) == max(lengths)
    pos = b["position_ids"].reshape(-1)
    for a, e in zip(cu[:-1], cu[1:], strict=True):  # positions restart at every segment
        assert pos[a:e].tolist() == list(range(e - a))
    flat = varlen.varlen_inputs(b)
    assert flat["input_ids"].shape == (1, s * t) and flat["max_length_q"] == int(b["max_seqlen"])


def _qkv(cu, heads=4, kv_heads=2, d=16, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    n = int(cu[-1])
    q, k, v = (torch.randn(1, h, n, d, generator=g) for h in (heads, kv_heads, kv_heads))
    return [x.requires_grad_(grad) for x in (q, k, v)]


def _per_row(q, k, v, cu):
    outs = []
    for a, e in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        outs.append(F.scaled_dot_product_attention(q[:, :, a:e], k[:, :, a:e], v[:, :, a:e], is_causal=True,
                                                   enable_gqa=True))
    return torch.cat(outs, dim=2).transpose(1, 2)  # [1, N, H, D]


pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

CU = torch.tensor([0, 7, 40, 41, 90, 128], dtype=torch.int32)  # rows of 7, 33, 1, 49 and a tail of 38


def test_sdpa_path_forward_and_backward_equal_per_row_sdpa():
    fn = varlen._make("sdpa")
    q, k, v = _qkv(CU, grad=True)
    out, _ = fn(None, q, k, v, None, cu_seq_lens_q=CU, max_length_q=49)
    ref = _per_row(q, k, v, CU)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(ref)
    got = torch.autograd.grad((out * w).sum(), (q, k, v))
    want = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_flex_path_forward_equals_per_row_sdpa():
    fn = varlen._make("flex")
    q, k, v = _qkv(CU, seed=1)
    with torch.no_grad():
        out, _ = fn(None, q, k, v, None, cu_seq_lens_q=CU, max_length_q=49)
        ref = _per_row(q, k, v, CU)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_a_token_never_sees_another_row():
    fn = varlen._make("sdpa")
    q, k, v = _qkv(CU, seed=2)
    out, _ = fn(None, q, k, v, None, cu_seq_lens_q=CU, max_length_q=49)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 7:40] += 5.0  # change the second row's keys and values only
    v2[:, :, 7:40] -= 3.0
    out2, _ = fn(None, q, k2, v2, None, cu_seq_lens_q=CU, max_length_q=49)
    changed = (out - out2).abs().amax(dim=(0, 2, 3)) > 0
    assert changed[7:40].all() and not changed[:7].any() and not changed[40:].any()


def test_backend_choice_and_errors():
    assert varlen.choose_backend("cpu") == "flex"  # no flash attention on CPU
    assert varlen.choose_backend("cpu", "sdpa") == "sdpa"
    with pytest.raises(RuntimeError, match="'flash' is not available on cpu"):
        varlen.choose_backend("cpu", "flash")
    with pytest.raises(ValueError, match="expected auto or one of flash, flex, sdpa"):
        varlen.choose_backend("cpu", "xformers")
    q, k, v = (torch.randn(2, 2, 8, 4) for _ in range(3))
    with pytest.raises(ValueError, match="flattened to \\[1, N\\]"):
        varlen._make("sdpa")(None, q, k, v, None, cu_seq_lens_q=torch.tensor([0, 8], dtype=torch.int32))


def _model(attn: str):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    model = Qwen3ForCausalLM(cfg)
    model.set_attn_implementation("sdpa")
    if attn != "sdpa":
        assert varlen.use_varlen_attention(model, attn) == varlen.attention_name(attn)
        assert varlen.is_varlen(model)
    return model.train()


@pytest.mark.parametrize("backend", ["sdpa", "flex"])
def test_packed_loss_through_the_model_equals_the_padded_loss(backend):
    exs = _examples([30, 50, 20, 45, 12], seed=3)
    ref_model, model = _model("sdpa"), _model(backend)
    padded, packed = pad_batch(exs, 0), pack_batch(exs, 0, max_length=80)
    assert packed["input_ids"].shape[0] > 1  # several packed sequences, run as one flattened sequence
    grad = backend == "sdpa"  # flex attention has no backward on CPU
    with torch.set_grad_enabled(grad):
        ref, n_ref = token_loss_sum(ref_model, padded)
        got, n = token_loss_sum(model, packed)
    assert n == n_ref
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
    if grad:
        w_ref = ref_model.model.layers[1].self_attn.q_proj.weight
        w = model.model.layers[1].self_attn.q_proj.weight
        torch.testing.assert_close(torch.autograd.grad(got, w)[0], torch.autograd.grad(ref, w_ref)[0],
                                   rtol=1e-4, atol=1e-6)


def test_without_cu_seqlens_it_is_plain_causal_attention():
    exs = _examples([30, 20], seed=4)
    padded = pad_batch(exs, 0)
    ref_model, model = _model("sdpa"), _model("sdpa")
    varlen.use_varlen_attention(model, "sdpa")
    with torch.no_grad(), maskless():
        a = model(input_ids=padded["input_ids"]).logits
    with torch.no_grad():
        b = ref_model(input_ids=padded["input_ids"]).logits
    torch.testing.assert_close(a, b)


def test_segment_attention_off_cpu_runs_all_rows_in_one_call_equal_to_per_row_sdpa():
    """``backends/cpu/attention.py`` on a non-CPU device uses ``spans_attention`` (no loop over rows); its
    result is checked here on CPU tensors against SDPA on each row alone, padding tails excluded."""
    g = torch.Generator().manual_seed(5)
    b_, t = 2, 40
    spans = [(0, 0, 12), (0, 12, 33), (1, 0, 40)]  # sequence 0 ends in 7 padding positions
    q = torch.randn(b_, 4, t, 8, generator=g, requires_grad=True)
    k, v = (torch.randn(b_, 2, t, 8, generator=g, requires_grad=True) for _ in range(2))
    out = varlen.spans_attention(q, k, v, spans, None)  # [B, T, H, D]
    assert out.shape == (b_, t, 4, 8)
    w = torch.randn_like(out)
    loss = sum((out[b, s:e] * w[b, s:e]).sum() for b, s, e in spans)
    ref_rows = {(b, s, e): F.scaled_dot_product_attention(q[b:b + 1, :, s:e], k[b:b + 1, :, s:e], v[b:b + 1, :, s:e],
                                                           is_causal=True, enable_gqa=True)[0].transpose(0, 1)
                for b, s, e in spans}
    for (b, s, e), r in ref_rows.items():
        torch.testing.assert_close(out[b, s:e], r, rtol=1e-5, atol=1e-5)
    ref_loss = sum((r * w[b, s:e]).sum() for (b, s, e), r in ref_rows.items())
    for a, r in zip(torch.autograd.grad(loss, (q, k, v)), torch.autograd.grad(ref_loss, (q, k, v)), strict=True):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5)
    tail = out[0, 33:]
    assert float(tail.abs().sum()) == 0.0  # padding after the last row: zero, as on CPU


# ------------------------------------------------------------ flash registration, one q/k/v dtype
_FLASH_STUB = '''"""A stand-in for the flash-attn package (tests/test_backend_varlen.py): the varlen entry point the
backend calls, computed with causal SDPA on each segment; every call's q/k/v dtypes are recorded."""
import torch
import torch.nn.functional as F

CALLS = []


def flash_attn_varlen_func(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p=0.0, softmax_scale=None, causal=False):
    CALLS.append({"dtypes": (q.dtype, k.dtype, v.dtype), "causal": causal, "max_q": max_q,
                  "same_cu": cu_q is cu_k})
    if q.dtype != k.dtype or k.dtype != v.dtype:  # as the real kernel: one dtype for q, k and v
        raise RuntimeError("query and key must have the same dtype")
    outs = []
    for a, e in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
        x = [t[a:e].transpose(0, 1)[None] for t in (q, k, v)]  # [1, H, n, D]
        outs.append(F.scaled_dot_product_attention(*x, is_causal=causal, scale=softmax_scale,
                                                   enable_gqa=True)[0].transpose(0, 1))
    return torch.cat(outs)
'''


@pytest.fixture
def flash_attn_stub(tmp_path, monkeypatch):
    """``flash_attn`` importable (a module on sys.path, as an installed package would be): enough for
    transformers to reach its flash-attention name checks, and for the backend to call the kernel."""
    import importlib
    import sys

    (tmp_path / "flash_attn").mkdir()
    (tmp_path / "flash_attn" / "__init__.py").write_text(_FLASH_STUB)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    importlib.invalidate_caches()
    module = importlib.import_module("flash_attn")
    yield module
    sys.modules.pop("flash_attn", None)


def test_flash_backend_registers_through_set_attn_implementation(flash_attn_stub):
    """transformers reads any attention name containing "flash" as a request for its own flash
    integration and fails to load a kernel of that name; the flash backend's name avoids it, and the
    model then runs the backend's own call into ``flash_attn_varlen_func``."""
    from transformers.utils.generic import is_flash_attention_requested

    exs = _examples([30, 50, 20, 45, 12], seed=6)
    ref_model, model = _model("sdpa"), _model("sdpa")
    name = varlen.use_varlen_attention(model, "flash")  # register + set_attn_implementation
    assert name == varlen.attention_name("flash") and "flash" not in name
    assert not is_flash_attention_requested(requested_attention_implementation=name)
    assert model.config._attn_implementation == name and varlen.is_varlen(model)
    with torch.no_grad():
        ref, n_ref = token_loss_sum(ref_model, pad_batch(exs, 0))
        got, n = token_loss_sum(model, pack_batch(exs, 0, max_length=80))
    assert n == n_ref
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
    calls = flash_attn_stub.CALLS
    assert len(calls) == 2 and all(c["causal"] and c["same_cu"] for c in calls)  # one call per layer


def _fp32_student_under_bf16_autocast_sees_mixed_qkv(model) -> None:
    """The premise: an fp32-weight Qwen3 under bf16 autocast hands attention fp32 q (from its q norm)
    and bf16 v (from v_proj)."""
    seen = {}
    attn = model.model.layers[0].self_attn
    hooks = [attn.q_norm.register_forward_hook(lambda m, i, o: seen.__setitem__("q", o.dtype)),
             attn.v_proj.register_forward_hook(lambda m, i, o: seen.__setitem__("v", o.dtype))]
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=torch.tensor([[1, 2, 3, 4]]))
    finally:
        for h in hooks:
            h.remove()
    assert seen == {"q": torch.float32, "v": torch.bfloat16}, seen


@pytest.mark.parametrize("backend", ["flash", "flex"])
def test_fp32_student_under_bf16_autocast_reaches_the_kernel_with_one_dtype(backend, flash_attn_stub, monkeypatch):
    """q/k/v are cast once, to autocast's dtype, before the flash or flex kernel (the flash kernel is the
    stand-in, which refuses mixed dtypes as the real one does; flex runs eagerly on CPU)."""
    import torch.nn.attention.flex_attention as flex

    received = flash_attn_stub.CALLS
    if backend == "flex":
        real = flex.flex_attention

        def spy(q, k, v, *a, **kw):
            received.append({"dtypes": (q.dtype, k.dtype, v.dtype)})
            return real(q, k, v, *a, **kw)

        monkeypatch.setattr(flex, "flex_attention", spy)
    exs = _examples([30, 50, 20, 45, 12], seed=7)
    ref_model, model = _model("sdpa"), _model("sdpa")
    _fp32_student_under_bf16_autocast_sees_mixed_qkv(model)
    varlen.use_varlen_attention(model, backend)
    assert next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        ref, _ = token_loss_sum(ref_model, pad_batch(exs, 0))  # fp32, no autocast
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = token_loss_sum(model, pack_batch(exs, 0, max_length=80))
    assert len(received) == 2, received  # one kernel call per layer
    assert all(c["dtypes"] == (torch.bfloat16,) * 3 for c in received), received
    torch.testing.assert_close(got.float(), ref, rtol=2e-2, atol=0.0)  # bf16 attention and matmuls
