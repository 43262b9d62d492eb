"""The trainer's fast paths compute exactly what the plain HF + peft path computes.

- row-segment attention (``backends/cpu/attention.py``) for packed and padding-free batches, and padded
  batches without a dense mask;
- the fused LoRA op (``backends/cpu/fused_lora.py``), forward and every gradient;
- the fused RMSNorm op (``backends/cpu/fused_norm.py``);
- the fused SwiGLU op (``backends/cpu/fused_mlp.py``);
- gradient checkpointing through both.
"""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from distill_lab.backends.cpu import fused_lora
from distill_lab.backends.cpu.attention import NAME, use_segment_attention
from distill_lab.backends.cpu.fused_lora import fuse_lora_layers
from distill_lab.backends.cpu.fused_mlp import SwiGLUFn, fuse_swiglu_mlps
from distill_lab.backends.cpu.fused_norm import RMSNormFn, fuse_rms_norms
from distill_lab.backends.forward import token_loss_sum
from distill_lab.stages.train.datamodule import collate, layout_for
from distill_lab.stages.train.packing import IGNORE, Example, pack_batch, pad_batch
from distill_lab.students import load_student
from tests.conftest import compose_config


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _examples(lengths: list[int], seed: int = 0) -> list[Example]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(5, 260, (n,), generator=g).tolist()
        out.append(Example(f"r{i}", ids, [IGNORE] * (n // 3) + ids[n // 3:]))
    return out


def _lora_student(seed: int = 0):
    """The tiny student with a LoRA adapter whose B is non-zero (so the adapter changes the output)."""
    cfg = compose_config(["student=tiny"], stage="train").student
    torch.manual_seed(seed)  # LoRA A's random init
    model, _ = load_student(cfg, for_training=True)
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data = torch.randn(p.shape, generator=g) * 0.05
    return model


def _loss_and_grads(model, batch) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    s, n = token_loss_sum(model, batch)
    (s / n).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
    return float(s) / n, grads


def _assert_same(a, b, tol: float) -> None:
    (la, ga), (lb, gb) = a, b
    assert abs(la - lb) < tol * abs(la), (la, lb)
    assert ga.keys() == gb.keys() and ga
    for k in ga:
        err = float((ga[k] - gb[k]).abs().max())
        assert err <= tol * max(float(ga[k].abs().max()), 1e-8), (k, err)


def test_layouts_and_segment_attention_match_masked_sdpa():
    model = _lora_student()
    exs = _examples([37, 90, 12, 64, 51])
    # reference: HF sdpa with the dense padding mask it builds itself
    ref_batch = pad_batch(exs, 0)
    model.zero_grad(set_to_none=True)
    targets = ref_batch["labels"][:, 1:]
    sel = targets != IGNORE
    inner = model.get_base_model()
    hidden = inner.model(input_ids=ref_batch["input_ids"], attention_mask=ref_batch["attention_mask"]).last_hidden_state
    loss = torch.nn.functional.cross_entropy(inner.lm_head(hidden[:, :-1][sel]), targets[sel], reduction="sum")
    (loss / int(sel.sum())).backward()
    ref = (float(loss) / int(sel.sum()),
           {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad})

    # padded without a mask, and packed with HF's own block mask (model still on sdpa)
    _assert_same(ref, _loss_and_grads(model, pad_batch(exs, 0)), 1e-4)
    _assert_same(ref, _loss_and_grads(model, pack_batch(exs, 0, max_length=128)), 1e-4)
    use_segment_attention(model)
    assert inner.config._attn_implementation == NAME
    for layout in ("padded", "padding_free", "packed"):
        batch = collate(exs, layout, 0, 128)
        if layout == "padding_free":
            assert batch["input_ids"].shape == (1, sum(len(e) for e in exs))
        _assert_same(ref, _loss_and_grads(model, batch), 1e-4)


def test_segment_attention_keeps_rows_apart():
    model = _lora_student()
    use_segment_attention(model)
    a, b = _examples([40, 25], seed=3)
    a2 = Example("r0", [7] * 10 + a.input_ids[10:], a.labels)  # change the start of row a only
    inner = model.get_base_model().model
    with torch.no_grad():
        h1 = inner(**_kw(model, collate([a, b], "padding_free", 0, 0))).last_hidden_state
        h2 = inner(**_kw(model, collate([a2, b], "padding_free", 0, 0))).last_hidden_state
    assert not torch.allclose(h1[0, :40], h2[0, :40])  # row a sees its own change
    assert torch.equal(h1[0, 40:], h2[0, 40:])  # row b, after it in the same sequence, never sees row a


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_row_attention_op_is_per_row_sdpa_bit_for_bit(monkeypatch, dtype):
    """``RowAttention`` (CPU kernels called directly) against SDPA on each row's slice: same output and
    same q/k/v gradients, bit for bit; grouped-query heads; two sequences, the second with padding after
    its rows, which gets zero output and zero gradient. The path of other devices (one block-diagonal
    SDPA call, ``backends/cuda/varlen.py::spans_attention``) agrees up to rounding."""
    from distill_lab.backends.cpu import attention

    monkeypatch.setenv("DISTILL_LAB_CPU_KERNELS", "0")  # the C++ kernel: tests/test_cpu_row_kernel.py
    g = torch.Generator().manual_seed(0)
    q0 = torch.randn(2, 4, 50, 16, generator=g).to(dtype)
    k0, v0 = (torch.randn(2, 2, 50, 16, generator=g).to(dtype) for _ in range(2))
    grad = torch.randn(2, 50, 4, 16, generator=g).to(dtype)
    segments = [[(0, 20), (20, 50)], [(0, 7), (7, 31)]]  # sequence 1: positions 31-49 are padding

    def run():
        q, k, v = (x.clone().requires_grad_() for x in (q0, k0, v0))
        out, _ = attention.segment_attention(None, q, k, v, None, scaling=0.3, segments=segments)
        out.backward(grad)
        return out.detach(), q.grad, k.grad, v.grad

    def sliced():
        q, k, v = (x.clone().requires_grad_() for x in (q0, k0, v0))
        out = torch.zeros(2, 50, 4, 16, dtype=dtype)
        for b, rows in enumerate(segments):
            for s, e in rows:
                o = torch.nn.functional.scaled_dot_product_attention(
                    q[b:b + 1, :, s:e], k[b:b + 1, :, s:e], v[b:b + 1, :, s:e], is_causal=True, scale=0.3,
                    enable_gqa=True)
                out = out.index_put((torch.tensor([b]), torch.arange(s, e)), o[0].transpose(0, 1))
        out.backward(grad)
        return out.detach(), q.grad, k.grad, v.grad

    fast = run()
    ref = sliced()
    for a, b in zip(fast, ref, strict=True):
        assert a.shape == b.shape and torch.equal(a, b)
    monkeypatch.setattr(attention, "_CPU_FLASH", None)  # the path of other devices
    other = run()
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    for a, b in zip(other, fast, strict=True):
        torch.testing.assert_close(a.float(), b.float(), **tol)
    assert fast[0][1, 31:].abs().sum() == 0 and fast[1][1, :, 31:].abs().sum() == 0
    # rows are independent: row (0, 20-50) equals attention over that row alone
    alone = torch.nn.functional.scaled_dot_product_attention(q0[:1, :, 20:], k0[:1, :, 20:], v0[:1, :, 20:],
                                                             is_causal=True, scale=0.3, enable_gqa=True)
    assert torch.equal(fast[0][0, 20:], alone[0].transpose(0, 1))


def test_segments_that_do_not_tile_the_sequence_are_refused():
    from distill_lab.backends.cpu.attention import segment_attention

    q = torch.zeros(1, 2, 10, 8)
    for bad in ([[(0, 4), (5, 10)]], [[(0, 4), (4, 11)]], [[(0, 0)]], [[(0, 4)], [(0, 4)]]):
        with pytest.raises(ValueError, match="distill_segments"):
            segment_attention(None, q, q, q, None, segments=bad)


def _kw(model, batch):
    from distill_lab.backends.forward import model_inputs

    return model_inputs(model, batch)


def test_without_segments_it_is_hf_sdpa_padding_mask_included():
    model = _lora_student()
    batch = pad_batch(_examples([20, 9]), 0)
    batch["input_ids"] = batch["input_ids"].flip(1)  # left padding, as in generation
    batch["attention_mask"] = batch["attention_mask"].flip(1)
    with torch.no_grad():
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        use_segment_attention(model)
        got = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(ref[real], got[real], atol=1e-5)


def test_layout_for_config():
    assert layout_for(packing=True, padding_free=True) == "packed"
    assert layout_for(packing=False, padding_free=True) == "padding_free"
    assert layout_for(packing=False, padding_free=False) == "padded"


def test_fused_lora_matches_peft_forward_and_gradients():
    model = _lora_student(seed=1)
    batch = collate(_examples([33, 70, 18]), "padding_free", 0, 0)
    ref = _loss_and_grads(model, batch)
    assert fuse_lora_layers(model) == 7 * 2  # every projection of both decoder layers
    assert fuse_lora_layers(model) == 0  # idempotent
    calls = []
    orig = fused_lora.LoraLinearFn.apply
    fused_lora.LoraLinearFn.apply = lambda *a: calls.append(1) or orig(*a)
    try:
        got = _loss_and_grads(model, batch)
    finally:
        fused_lora.LoraLinearFn.apply = orig
    assert len(calls) == 14  # the fused op ran, once per layer
    _assert_same(ref, got, 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_lora_with_bias_and_input_gradient(dtype):
    """fp32 folds the adapter into W' = W + s B A; bf16 accumulates it into the base GEMM instead."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.Tanh(), torch.nn.Linear(40, 8))
    peft_net = get_peft_model(net, LoraConfig(r=4, lora_alpha=12, target_modules=["0", "2"])).to(dtype)
    for n, p in peft_net.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.1)
    x = torch.randn(3, 5, 24, dtype=dtype, requires_grad=True)

    def run():
        peft_net.zero_grad(set_to_none=True)
        x.grad = None
        y = peft_net(x)
        (y.float() ** 2).sum().backward()
        return y.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in peft_net.named_parameters() if p.requires_grad}

    y0, gx0, g0 = run()
    assert fuse_lora_layers(peft_net) == 2
    calls = []
    orig = fused_lora.LoraLinearFn.apply
    fused_lora.LoraLinearFn.apply = lambda *a: calls.append(1) or orig(*a)
    try:
        y1, gx1, g1 = run()
    finally:
        fused_lora.LoraLinearFn.apply = orig
    assert len(calls) == 2
    tol = dict(atol=1e-6) if dtype == torch.float32 else dict(atol=0.05, rtol=0.02)
    assert torch.allclose(y0, y1, **tol)
    assert torch.allclose(gx0, gx1, **tol)
    for n in g0:
        assert torch.allclose(g0[n], g1[n], **tol), n


def test_fused_lora_steps_aside_where_it_would_differ():
    net = torch.nn.Sequential(torch.nn.Linear(16, 16))
    peft_net = get_peft_model(net, LoraConfig(r=2, lora_alpha=4, target_modules=["0"], lora_dropout=0.1))
    layer = peft_net.base_model.model[0]
    assert fused_lora._fusable_now(layer) is None  # dropout: peft's own forward
    peft_net2 = get_peft_model(torch.nn.Sequential(torch.nn.Linear(16, 16)),
                               LoraConfig(r=2, lora_alpha=4, target_modules=["0"]))
    layer2 = peft_net2.base_model.model[0]
    assert fused_lora._fusable_now(layer2) == "default"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_lora._fusable_now(layer2) == "default"  # autocast: the op's autocast path
    with peft_net2.disable_adapter():
        assert fused_lora._fusable_now(layer2) is None


def test_fused_lora_under_bf16_autocast_matches_peft_and_casts_the_frozen_weight_once():
    """bf16-mixed: the op computes what autocast computes for peft's linears (bf16 products of bf16-rounded
    inputs), gradients reach the fp32 adapter, and the frozen base weight is cast once, not per call."""
    torch.manual_seed(0)
    net = get_peft_model(torch.nn.Sequential(torch.nn.Linear(64, 48)), LoraConfig(r=4, lora_alpha=8, target_modules=["0"]))
    layer = net.base_model.model[0]
    torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.1)
    x = torch.randn(3, 10, 64)

    def run(fused: bool):
        net.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(xi) if fused else layer._distill_own_forward(xi)
        (y.float() ** 2).sum().backward()
        return y, xi.grad, {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}

    assert fuse_lora_layers(net) == 1
    (y0, gx0, g0), (y1, gx1, g1) = run(False), run(True)
    assert y1.dtype == y0.dtype == torch.bfloat16 and gx1.dtype == torch.float32
    assert torch.allclose(y0.float(), y1.float(), rtol=2e-2, atol=2e-2)
    assert torch.allclose(gx0, gx1, rtol=3e-2, atol=3e-2)
    for n in g0:
        assert g1[n].dtype == torch.float32
        assert float((g0[n] - g1[n]).abs().max()) <= 3e-2 * float(g0[n].abs().max()), n
    cached = layer.base_layer._distill_half_weight[2]
    run(True)
    assert layer.base_layer._distill_half_weight[2] is cached  # not cast again
    with torch.no_grad():
        layer.base_layer.weight.add_(1.0)  # a write bumps the version: the cast copy is renewed
    run(True)
    assert torch.equal(layer.base_layer._distill_half_weight[2], layer.base_layer.weight.bfloat16())


def test_segment_attention_under_bf16_autocast_takes_mixed_q_k_v_dtypes():
    """The `make demo` crash: under bf16 autocast q and k leave their norms in fp32 while v is bf16; the
    op computes in autocast's dtype, as SDPA does under autocast."""
    from distill_lab.backends.cpu.attention import segment_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 24, 32, generator=g) for _ in range(3))
    segments = [[(0, 10), (10, 24)]]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = segment_attention(None, q, k, v.bfloat16(), None, scaling=0.2, segments=segments)
        ref = [torch.nn.functional.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e],
                                                                is_causal=True, scale=0.2) for s, e in segments[0]]
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), torch.cat(ref, 2).transpose(1, 2).float(), atol=2e-2)


@pytest.mark.parametrize("norm_class", ["qwen3", "llama"])
def test_rms_norm_op_matches_transformers_forward_and_gradients(norm_class):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

    g = torch.Generator().manual_seed(0)
    norm = {"qwen3": Qwen3RMSNorm, "llama": LlamaRMSNorm}[norm_class](48, eps=1e-5)
    norm.weight.data = torch.rand(48, generator=g) + 0.5
    x = (torch.randn(2, 7, 3, 48, generator=g) * 4).requires_grad_()
    upstream = torch.randn(2, 7, 3, 48, generator=g)
    results = []
    for forward in (norm.forward, lambda t: RMSNormFn.apply(t, norm.weight, norm.variance_epsilon)):
        x.grad, norm.weight.grad = None, None
        y = forward(x)
        y.backward(upstream)
        results.append((y.detach(), x.grad.clone(), norm.weight.grad.clone()))
    for ref, got in zip(*results, strict=True):
        assert torch.allclose(ref, got, rtol=1e-5, atol=1e-5), float((ref - got).abs().max())


def test_fuse_rms_norms_swaps_only_norms_that_compute_the_formula():
    class OnePlusWeightRMSNorm(torch.nn.Module):  # Gemma's variant: x * (1 + w)
        def __init__(self):
            super().__init__()
            self.weight, self.variance_epsilon = torch.nn.Parameter(torch.zeros(8), requires_grad=False), 1e-6

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon) * (1 + self.weight)

    model = _lora_student(seed=4)
    variant = OnePlusWeightRMSNorm()
    model.add_module("variant", variant)
    batch = collate(_examples([35, 58, 21]), "padding_free", 0, 0)
    use_segment_attention(model)
    ref = _loss_and_grads(model, batch)
    assert fuse_rms_norms(model) == 2 * 4 + 1  # input, post-attention, q and k norms per layer; final norm
    assert fuse_rms_norms(model) == 0  # idempotent
    assert not hasattr(variant, "_distill_own_forward")  # the probe told it apart
    calls = []
    orig = RMSNormFn.apply
    RMSNormFn.apply = lambda *a: calls.append(1) or orig(*a)
    try:
        got = _loss_and_grads(model, batch)
        norm = model.get_base_model().model.norm
        x = torch.randn(4, norm.weight.numel())
        with torch.no_grad():  # half precision: the module's own forward, bit for bit
            assert torch.equal(norm(x.bfloat16()), norm._distill_own_forward(x.bfloat16()))
    finally:
        RMSNormFn.apply = orig
    assert len(calls) == 9  # once per norm, and not for the bf16 call
    _assert_same(ref, got, 1e-5)


def test_swiglu_op_matches_silu_times_up_in_float64():
    g = torch.Generator().manual_seed(0)
    gate = torch.randn(5, 37, generator=g) * 6  # 185 values: vector body and scalar tail
    gate[0, :4] = torch.tensor([-100.0, -88.0, 0.0, 95.0])  # saturated sigmoid both ways
    gate.requires_grad_()
    up = torch.randn(5, 37, generator=g).requires_grad_()
    upstream = torch.randn(5, 37, generator=g)
    h = SwiGLUFn.apply(gate, up)
    h.backward(upstream)
    g64, u64 = gate.detach().double().requires_grad_(), up.detach().double().requires_grad_()
    ref = torch.nn.functional.silu(g64) * u64
    ref.backward(upstream.double())
    for got, want in ((h, ref), (gate.grad, g64.grad), (up.grad, u64.grad)):
        assert torch.allclose(got.detach().double(), want.detach(), rtol=1e-5, atol=1e-5), \
            float((got.double() - want).abs().max())


def test_fuse_swiglu_mlps_swaps_only_silu_gated_mlps():
    class GeluMLP(torch.nn.Module):  # same wiring, another activation: must keep its own forward
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj = torch.nn.Linear(8, 16), torch.nn.Linear(8, 16)
            self.down_proj = torch.nn.Linear(16, 8)

        def forward(self, x):
            return self.down_proj(torch.nn.functional.gelu(self.gate_proj(x)) * self.up_proj(x))

    model = _lora_student(seed=5)
    variant = GeluMLP().requires_grad_(False)
    model.add_module("variant", variant)
    batch = collate(_examples([35, 58, 21]), "padding_free", 0, 0)
    use_segment_attention(model)
    ref = _loss_and_grads(model, batch)
    assert fuse_swiglu_mlps(model) == 2  # one per decoder layer
    assert fuse_swiglu_mlps(model) == 0  # idempotent
    assert not hasattr(variant, "_distill_own_forward")  # the probe told it apart
    calls = []
    orig = SwiGLUFn.apply
    SwiGLUFn.apply = lambda *a: calls.append(1) or orig(*a)
    try:
        got = _loss_and_grads(model, batch)
        mlp = model.get_base_model().model.layers[0].mlp
        x = torch.randn(4, 128)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: its own forward
            assert torch.equal(mlp(x), mlp._distill_own_forward(x))
    finally:
        SwiGLUFn.apply = orig
    assert len(calls) == 2  # once per layer, not for the autocast call
    _assert_same(ref, got, 1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    exs = _examples([44, 80, 23, 61])
    results, calls = [], []
    for ckpt in (False, True):
        model = _lora_student(seed=2)
        use_segment_attention(model)
        fuse_lora_layers(model)
        if ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        model.train()
        n: list[int] = []
        model.get_base_model().model.layers[0].self_attn.register_forward_hook(lambda *a, n=n: n.append(1))
        results.append(_loss_and_grads(model, collate(exs, "packed", 0, 128)))
        calls.append(len(n))
    assert calls == [1, 2]  # checkpointing really recomputed the layer in the backward
    _assert_same(results[0], results[1], 1e-5)


def test_the_stage_model_trains_in_training_mode_with_checkpointing_active():
    """``train.gradient_checkpointing`` and LoRA dropout only act in training mode; from_pretrained gives
    eval mode and Lightning keeps it, so the stage must switch the model itself."""
    from distill_lab.stages.train.run import _setup_model

    cfg = compose_config(["student=tiny", "train.gradient_checkpointing=true", "student.lora.dropout=0.1"],
                         stage="train")
    model, _, backend, _ = _setup_model(cfg, "32-true")
    assert all(m.training for m in model.modules())
    n: list[int] = []
    model.get_base_model().model.layers[0].self_attn.register_forward_hook(lambda *a: n.append(1))
    s, k = backend.loss_sum(model, collate(_examples([30, 41]), "padding_free", 0, 0))
    (s / k).backward()
    assert len(n) == 2  # the layer ran again in the backward: checkpointing is on
