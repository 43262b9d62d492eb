"""backends/loss.py: the chunked LM head + cross-entropy equals the plain one (loss and gradients), and
its memory peak is one chunk, not N x V (measured at Qwen3-4B's head size and 16k supervised tokens)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from distill_lab.backends.loss import DEFAULT_CHUNK, linear_cross_entropy_sum, supervised_loss_sum
from tests.memory_support import LiveBytes


def _reference(h, w, b, t):
    return F.cross_entropy(F.linear(h, w, b).float(), t, reduction="sum")


def _inputs(n, hsize, v, dtype, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hsize, generator=g).to(dtype).requires_grad_()
    w = (torch.randn(v, hsize, generator=g) * 0.3).to(dtype).requires_grad_()
    b = (torch.randn(v, generator=g) * 0.1).to(dtype).requires_grad_() if bias else None
    t = torch.randint(0, v, (n,), generator=g)
    return h, w, b, t


def _grads(loss, *xs):
    return torch.autograd.grad(loss, [x for x in xs if x is not None])


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_fp32_loss_and_grads_equal_the_unchunked_reference(chunk):
    h, w, b, t = _inputs(61, 24, 97, torch.float32)
    ref = _reference(h, w, b, t)
    got = linear_cross_entropy_sum(h, w, t, bias=b, chunk_size=chunk)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-4)
    for a, r in zip(_grads(2.5 * got, h, w, b), _grads(2.5 * ref, h, w, b), strict=True):  # scaled upstream
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


def test_bf16_matches_the_reference_and_returns_bf16_grads():
    h, w, _, t = _inputs(300, 64, 500, torch.bfloat16, seed=1, bias=False)
    lin = torch.nn.Linear(64, 500, bias=False, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(w)
    ref = _reference(h, lin.weight, None, t)
    got = linear_cross_entropy_sum(h, lin, t, chunk_size=128)
    torch.testing.assert_close(got, ref, rtol=2e-3, atol=0.5)
    gh, gw = _grads(got, h, lin.weight)
    rh, rw = _grads(ref, h, lin.weight)
    assert gh.dtype == gw.dtype == torch.bfloat16
    for a, r in ((gh, rh), (gw, rw)):
        cos = F.cosine_similarity(a.float().flatten(), r.float().flatten(), dim=0)
        assert cos > 0.999, cos
        assert (a.float() - r.float()).norm() / r.float().norm() < 2e-2


def test_frozen_head_gets_no_gradient_and_no_grad_mode_computes_the_loss_only():
    h, w, _, t = _inputs(40, 16, 33, torch.float32, bias=False)
    w.requires_grad_(False)
    loss = linear_cross_entropy_sum(h, w, t, chunk_size=16)
    (gh,) = torch.autograd.grad(loss, [h])
    torch.testing.assert_close(gh, torch.autograd.grad(_reference(h, w, None, t), [h])[0], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        val = linear_cross_entropy_sum(h, w, t, chunk_size=16)
    assert not val.requires_grad
    torch.testing.assert_close(val, loss.detach())


def test_no_supervised_rows_give_zero_loss_and_zero_gradients():
    h, w, _, t = _inputs(0, 8, 11, torch.float32, bias=False)
    base = torch.randn(3, 8, requires_grad=True)
    loss = linear_cross_entropy_sum(base[:0] + h, w, t)  # still part of the graph (FSDP: every rank backs up)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert base.grad is not None and float(base.grad.abs().sum()) == 0.0


def test_bad_inputs_are_named():
    h, w, _, t = _inputs(4, 8, 11, torch.float32, bias=False)
    with pytest.raises(TypeError, match="nn.Linear or a weight tensor"):
        linear_cross_entropy_sum(h, torch.nn.Embedding(11, 8), t)
    with pytest.raises(ValueError, match="chunk_size"):
        linear_cross_entropy_sum(h, w, t, chunk_size=0)
    with pytest.raises(ValueError, match="hidden size 8 != head input size 9"):
        linear_cross_entropy_sum(h, torch.randn(11, 9), t)


def test_live_bytes_counts_allocations_and_frees():
    with LiveBytes() as m:
        a = torch.empty(1000)  # 4000 bytes
        b = torch.empty(500, dtype=torch.float64)  # 4000 more
        del b
        c = a.view(10, 100)  # a view: no new storage
        assert m.now == 4000
    assert m.peak == 8000 and c.shape == (10, 100)


QWEN3_4B_HEAD = (2560, 151936)  # hidden size, vocabulary


def _loss_peak(n: int, chunked: bool) -> int:
    """Peak bytes allocated by the loss + backward beyond its inputs (bf16 hidden states, frozen bf16
    head, as under QLoRA), counted on fake tensors: the shapes are real, nothing is computed."""
    hsize, v = QWEN3_4B_HEAD
    with FakeTensorMode():
        h = torch.empty(n, hsize, dtype=torch.bfloat16, requires_grad=True)
        w = torch.empty(v, hsize, dtype=torch.bfloat16)
        t = torch.zeros(n, dtype=torch.long)
        with LiveBytes(h, w, t) as m:
            loss = linear_cross_entropy_sum(h, w, t) if chunked else _reference(h, w, None, t)
            loss.backward()
        return m.peak


def test_loss_memory_peak_is_one_chunk_not_n_by_vocab_at_qwen3_4b_head_size():
    hsize, v = QWEN3_4B_HEAD
    n = 16384
    chunk_logits = DEFAULT_CHUNK * v * (4 + 2 + 2)  # fp32 logits/probabilities + bf16 matmul output + bf16 grad
    per_token = n * hsize * 2 * 2  # d_hidden stored by forward + the gradient handed to the hidden states
    peak = _loss_peak(n, chunked=True)
    assert peak <= chunk_logits + per_token + 2**20, (peak / 2**30, chunk_logits / 2**30)
    assert peak < 1.5 * 2**30  # GiB: against 28 GiB for the plain path below
    ref = _loss_peak(n, chunked=False)
    assert ref >= n * v * (4 + 4 + 2), ref / 2**30  # fp32 logits, fp32 log-softmax, bf16 logits
    # doubling the tokens grows the chunked peak by the per-token terms only, not by N x V
    assert _loss_peak(2 * n, chunked=True) - peak <= per_token + 2**20


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    from distill_lab.backends.loss import linear_cross_entropy_sum
    n, hsize, v, chunk = map(int, sys.argv[1:5])
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, hsize, generator=g).requires_grad_()
    w = torch.randn(v, hsize, generator=g) * 0.02
    t = torch.randint(0, v, (n,), generator=g)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss = linear_cross_entropy_sum(h, w, t, chunk_size=chunk)
    loss.backward()
    assert torch.isfinite(loss) and h.grad is not None
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
""")


@pytest.mark.slow
def test_real_process_peak_rss_of_the_loss_is_bounded_by_a_chunk():
    """The same bound, in a real process (maxrss delta): Qwen3's vocabulary, 16k tokens, a narrow
    hidden size to keep the arithmetic short. The plain path would need N x V x 4 = 10 GB for one copy."""
    n, hsize, v, chunk = 16384, 32, 151936, 256
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(n), str(hsize), str(v), str(chunk)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    grown = int(out.stdout.strip().splitlines()[-1])
    assert grown < 3 * chunk * v * 4 + 2 * n * hsize * 4 + 64 * 2**20, grown / 2**20
    assert grown < n * v * 4 / 16  # 0.6 GiB against 10 GB


def _tiny_lm(vocab=64, hidden=32):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=False)
    return Qwen3ForCausalLM(cfg).eval()


def test_supervised_loss_runs_inside_the_root_forward_and_equals_the_dense_loss():
    model = _tiny_lm()
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(3))
    labels = ids.clone()
    labels[0, :5] = -100
    labels[1, 9:] = -100
    sel = labels[:, 1:] != -100
    targets = labels[:, 1:][sel]
    calls = []
    handle = model.register_forward_pre_hook(lambda mod, args: calls.append("root"))  # what FSDP2 hooks use
    got = supervised_loss_sum(model, {"input_ids": ids}, sel, targets, chunk_size=4)
    handle.remove()
    assert calls == ["root"]
    assert "forward" not in model.__dict__  # the swap is undone
    ref_logits = model(input_ids=ids).logits[:, :-1][sel]
    ref = F.cross_entropy(ref_logits.float(), targets, reduction="sum")
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    g = torch.autograd.grad(got, model.model.layers[0].mlp.up_proj.weight)[0]
    r = torch.autograd.grad(ref, model.model.layers[0].mlp.up_proj.weight)[0]
    torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
