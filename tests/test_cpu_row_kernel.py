"""The C++ row-attention kernel (``backends/cpu/kernels/row_attention.cpp``) and its build (``backends/cpu/cpu_kernels.py``).

The kernel is checked against causal SDPA in float64 on each row alone: output and the q, k and v
gradients, for head sizes 16-128, grouped-query heads, rows shorter than a tile and rows that end
mid-tile, several sequences with padding after their rows, and the transposed q/k/v layout that
transformers passes.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from distill_lab.backends.cpu import attention, cpu_kernels

needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "c++")) is None,
                                    reason="no C++ compiler on PATH: the kernel cannot be built here")


def _inputs(b: int, t: int, h: int, hk: int, d: int, seed: int = 0):
    """q [B, H, T, D] and k, v [B, Hk, T, D] as transformers passes them: transposes of [B, T, heads, D]."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, h, d, generator=g).transpose(1, 2)
    k, v = (torch.randn(b, t, hk, d, generator=g).transpose(1, 2) for _ in range(2))
    return q, k, v, torch.randn(b, t, h, d, generator=g)


def _reference(q, k, v, grad, spans, scale):
    """Per-row causal SDPA in float64: output [B, T, H, D] and the q, k, v gradients (zero after the rows)."""
    out = torch.zeros(grad.shape, dtype=torch.float64)
    grads = [torch.zeros(x.shape, dtype=torch.float64) for x in (q, k, v)]
    for b, s, e in spans:
        qs, ks, vs = (x[b:b + 1, :, s:e].double().requires_grad_() for x in (q, k, v))
        o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale, enable_gqa=True)
        o.backward(grad[b:b + 1, s:e].transpose(1, 2).double())
        out[b, s:e] = o[0].detach().transpose(0, 1)
        for dst, src in zip(grads, (qs, ks, vs), strict=True):
            dst[b, :, s:e] = src.grad[0]
    return out, grads


def _kernel(q, k, v, grad, spans, scale):
    q, k, v = (x.clone().requires_grad_() for x in (q, k, v))
    out = attention.KernelRowAttention.apply(q, k, v, spans, scale)
    out.backward(grad)
    return out.detach(), [q.grad, k.grad, v.grad]


@needs_compiler
@pytest.mark.parametrize("h,hk,d", [(4, 2, 32), (9, 3, 64), (2, 2, 16), (4, 1, 128)])
def test_kernel_matches_per_row_sdpa_in_float64(h, hk, d):
    assert attention._row_kernel() is not None
    # sequence 0: rows of 1, 3, 17 and 45 tokens; sequence 1: one 33-token row, then 28 positions of padding
    spans = [(0, 0, 1), (0, 1, 4), (0, 4, 21), (0, 21, 66), (1, 0, 33)]
    q, k, v, grad = _inputs(2, 66, h, hk, d)
    out, grads = _kernel(q, k, v, grad, spans, 0.3)
    ref_out, ref_grads = _reference(q, k, v, grad, spans, 0.3)
    assert out.shape == (2, 66, h, d)
    assert torch.allclose(out.double(), ref_out, atol=2e-6, rtol=1e-5)
    for got, ref in zip(grads, ref_grads, strict=True):
        assert got.shape == ref.shape
        assert torch.allclose(got.double(), ref, atol=2e-5, rtol=1e-4), float((got.double() - ref).abs().max())
    assert out[1, 33:].abs().sum() == 0 and all(g[1, :, 33:].abs().sum() == 0 for g in grads)


@needs_compiler
def test_kernel_default_scale_and_threads_do_not_change_the_result():
    spans = [(0, 0, 120), (0, 120, 200), (0, 200, 203)]
    q, k, v, grad = _inputs(1, 203, 4, 2, 32, seed=1)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _kernel(q, k, v, grad, spans, None)
        torch.set_num_threads(2)
        two = _kernel(q, k, v, grad, spans, None)
    finally:
        torch.set_num_threads(n)
    # each (row, kv head) is computed by one thread, so the split over threads cannot change a bit
    assert torch.equal(one[0], two[0]) and all(torch.equal(a, b) for a, b in zip(one[1], two[1], strict=True))
    ref_out, _ = _reference(q, k, v, grad, spans, 32 ** -0.5)  # scale None: 1 / sqrt(head_dim)
    assert torch.allclose(one[0].double(), ref_out, atol=2e-6, rtol=1e-5)


@needs_compiler
def test_segment_attention_takes_the_kernel_for_fp32_and_bf16_and_pytorchs_kernels_otherwise(monkeypatch):
    calls = []
    for name in ("KernelRowAttention", "RowAttention"):
        fn = getattr(attention, name)
        monkeypatch.setattr(fn, "apply", lambda *a, _f=fn.apply, _n=name: calls.append(_n) or _f(*a))
    q, k, v, _ = _inputs(1, 24, 4, 2, 32)
    segments = [[(0, 10), (10, 24)]]
    fp32, _ = attention.segment_attention(None, q, k, v, None, scaling=0.2, segments=segments)
    bf16, _ = attention.segment_attention(None, q.bfloat16(), k.bfloat16(), v.bfloat16(), None, scaling=0.2,
                                          segments=segments)
    odd, _ = attention.segment_attention(None, q[..., :24], k[..., :24], v[..., :24], None, scaling=0.2,
                                         segments=segments)  # head_dim 24: not a multiple of 16
    monkeypatch.setenv("DISTILL_LAB_CPU_KERNELS", "0")
    off, _ = attention.segment_attention(None, q, k, v, None, scaling=0.2, segments=segments)
    assert calls == ["KernelRowAttention", "KernelRowAttention", "RowAttention", "RowAttention"]  # bf16: upcast
    assert bf16.dtype == torch.bfloat16
    assert torch.allclose(fp32, off, atol=1e-6) and torch.allclose(fp32, bf16.float(), atol=3e-2)


@needs_compiler
def test_build_is_cached_per_source_and_flags(tmp_path):
    """A fresh process builds into the cache; the next one loads the same file without compiling."""
    code = ("import torch, sys; from distill_lab.backends.cpu import cpu_kernels as c; "
            "assert c.load('row_attention', {}) is not None; print(sorted(p.name for p in c.cache_root().iterdir()))")
    env = {**os.environ, "DISTILL_LAB_CACHE": str(tmp_path), "DISTILL_LAB_CPU_KERNELS": "1"}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    [lib] = (tmp_path / "kernels").iterdir()
    assert lib.name.startswith("row_attention-") and lib.suffix == ".so" and lib.name in first
    stamp = lib.stat().st_mtime_ns
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert second == first and lib.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert "-fopenmp" in cpu_kernels.compile_flags() or sys.platform != "linux"  # shares torch's thread pool


def test_without_a_compiler_training_falls_back_with_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("DISTILL_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(cpu_kernels, "_LOADED", {})
    with caplog.at_level(logging.WARNING, logger="distill_lab.backends.cpu.cpu_kernels"):
        assert cpu_kernels.load("row_attention", {}) is None
    assert "no C++ compiler" in caplog.text and "no-such-compiler" in caplog.text
    q, k, v, grad = _inputs(1, 30, 4, 2, 32)
    out, _ = attention.segment_attention(None, q, k, v, None, scaling=0.3, segments=[[(0, 30)]])
    ref, _ = _reference(q, k, v, grad, [(0, 0, 30)], 0.3)
    assert torch.allclose(out.double(), ref, atol=2e-6)  # PyTorch's kernels ran instead


def test_a_failing_build_names_the_compiler_error(monkeypatch, tmp_path):
    fake = tmp_path / "c++"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo fake 1.0 && exit 0\necho 'fatal: broken' >&2; exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("DISTILL_LAB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="failed on row_attention.cpp:\n.*fatal: broken"):
        cpu_kernels._build("row_attention", {})
    assert not list((tmp_path / "kernels").glob("*.so"))  # nothing half-written is left to load


@needs_compiler
def test_kernel_built_without_openmp_runs_its_own_threads(monkeypatch, tmp_path):
    """Where torch does not run GNU OpenMP (macOS, other runtimes) the kernel is built without -fopenmp
    and splits the rows over threads of its own: same results."""
    monkeypatch.setattr(cpu_kernels, "_torch_uses_libgomp", lambda: False)
    monkeypatch.setattr(cpu_kernels, "_LOADED", {})
    monkeypatch.setenv("DISTILL_LAB_CACHE", str(tmp_path))
    assert "-fopenmp" not in cpu_kernels.compile_flags()
    spans = [(0, 0, 70), (0, 70, 71), (0, 71, 130)]
    q, k, v, grad = _inputs(1, 130, 4, 2, 32, seed=2)
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out, grads = _kernel(q, k, v, grad, spans, 0.25)
    finally:
        torch.set_num_threads(n)
    assert [p.name.startswith("row_attention-") for p in (tmp_path / "kernels").iterdir()] == [True]
    ref_out, ref_grads = _reference(q, k, v, grad, spans, 0.25)
    assert torch.allclose(out.double(), ref_out, atol=2e-6, rtol=1e-5)
    for got, ref in zip(grads, ref_grads, strict=True):
        assert torch.allclose(got.double(), ref, atol=2e-5, rtol=1e-4)
