"""The parity suite: every training backend available on this machine against plain transformers + peft.

The baseline is the unmodified peft model (transformers' own attention, sdpa on CPU) on a right-padded
batch with its attention mask, full logits and a plain cross-entropy: no backend code at all. Each
case prepares a fresh copy of the same model with a backend (``backends/select.py``), feeds it the same
rows in one layout, and compares the loss and every LoRA gradient with the baseline:

- backends: those ``available`` here (``reference`` and, on CPU, ``cpu_fast``);
- layouts: padded, padding-free, packed;
- dtypes: fp32, and bf16 autocast (``bf16-mixed``, forced: it runs on CPUs without native bf16 too);
- gradient checkpointing off and on;
- adapters: LoRA, and QLoRA (bitsandbytes 4-bit NF4 base, bf16 compute).

Tolerances, per dtype (``TOL``): the loss within a relative ``loss`` error, and for every LoRA tensor
the largest gradient error within ``grad`` times the tensor's largest gradient. fp32 differs only by
summation order. Under bf16 autocast every matmul rounds its output to 8 bits of mantissa (relative
error up to 2^-8), and the backends legitimately round in other places (attention per row instead of
one masked call, the LM head at supervised positions only), so the bound is a few bf16 ulps. QLoRA
computes in bf16 whatever the autocast setting, so it takes the bf16 bounds.

A backend added later (a CUDA one) joins by being ``available``; the cases and bounds stay.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from distill_lab.backends.select import RunTraits, available, select_backend
from distill_lab.stages.train.datamodule import collate
from distill_lab.stages.train.packing import IGNORE, Example, pad_batch
from distill_lab.students import load_student
from tests.conftest import compose_config

TOL = {"fp32": {"loss": 1e-5, "grad": 1e-4}, "bf16": {"loss": 1e-3, "grad": 5e-2}}
LENGTHS = [37, 90, 12, 64, 51]  # packed at 128: three sequences, the last with padding after its rows
BACKENDS = available("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _examples() -> list[Example]:
    g = torch.Generator().manual_seed(0)
    out = []
    for i, n in enumerate(LENGTHS):
        ids = torch.randint(5, 260, (n,), generator=g).tolist()
        out.append(Example(f"r{i}", ids, [IGNORE] * (n // 3) + ids[n // 3:]))
    return out


_PRISTINE: dict[str, torch.nn.Module] = {}


def _student(adapter: str):
    """A copy of the tiny student with an adapter whose B is non-zero (so A gets gradients), the same each
    call (loaded once per adapter: a QLoRA load quantises every weight)."""
    if adapter not in _PRISTINE:
        _PRISTINE[adapter] = _load(adapter)
    return copy.deepcopy(_PRISTINE[adapter])


def _load(adapter: str):
    cfg = compose_config(["student=tiny", f"student.adapter={adapter}"], stage="train").student
    torch.manual_seed(0)  # LoRA A's random init
    model, _ = load_student(cfg, for_training=True)
    g = torch.Generator().manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data = (torch.randn(p.shape, generator=g) * 0.05).to(p.dtype)
    model.train()
    return model


def _autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {k: p.grad.float().clone() for k, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g.abs().max() > 0 for g in grads.values()), "every LoRA tensor gets a gradient"
    return grads


_BASELINES: dict[tuple[str, str], tuple[float, dict[str, torch.Tensor]]] = {}


def _baseline(adapter: str, dtype: str) -> tuple[float, dict[str, torch.Tensor]]:
    """Plain transformers + peft: padded batch, its attention mask, full logits."""
    if (adapter, dtype) not in _BASELINES:
        model = _student(adapter)
        batch = pad_batch(_examples(), 0)
        targets = batch["labels"][:, 1:]
        sel = targets != IGNORE
        with _autocast(dtype):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = F.cross_entropy(logits[:, :-1][sel].float(), targets[sel], reduction="sum") / int(sel.sum())
        loss.backward()
        _BASELINES[adapter, dtype] = (float(loss.detach()), _grads(model))
    return _BASELINES[adapter, dtype]


@pytest.mark.parametrize("adapter", ["lora", "qlora"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["no_ckpt", "ckpt"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("layout", ["padded", "padding_free", "packed"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_plain_transformers_and_peft(backend, layout, dtype, checkpointing, adapter):
    ref_loss, ref_grads = _baseline(adapter, dtype)
    model = _student(adapter)
    precision = "bf16-mixed" if dtype == "bf16" else "32-true"
    chosen = select_backend(backend, RunTraits("cpu", precision, adapter == "qlora", "auto"))
    report = chosen.prepare(model)
    assert report.backend == backend
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    batch = collate(_examples(), layout, 0, 128)
    with _autocast(dtype):
        s, n = chosen.loss_sum(model, batch)
    (s / n).backward()
    loss, grads = float(s.detach()) / n, _grads(model)

    tol = TOL["bf16" if dtype == "bf16" or adapter == "qlora" else "fp32"]
    assert n == sum(sum(1 for x in e.labels[1:] if x != IGNORE) for e in _examples())
    assert abs(loss - ref_loss) <= tol["loss"] * abs(ref_loss), (loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for k, g in grads.items():
        err = float((g - ref_grads[k]).abs().max())
        assert err <= tol["grad"] * float(ref_grads[k].abs().max()), (k, err, float(ref_grads[k].abs().max()))


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("layout", ["padding_free", "packed"])
def test_cpu_fast_without_its_cpp_kernels_matches_too(monkeypatch, layout, dtype):
    """``DISTILL_LAB_CPU_KERNELS=0`` (or no compiler): attention through PyTorch's CPU flash kernels per
    row and no SwiGLU kernel; the same bounds hold."""
    if "cpu_fast" not in BACKENDS:
        pytest.skip("no cpu_fast here")
    monkeypatch.setenv("DISTILL_LAB_CPU_KERNELS", "0")
    ref_loss, ref_grads = _baseline("lora", dtype)
    model = _student("lora")
    chosen = select_backend("cpu_fast", RunTraits("cpu", "bf16-mixed" if dtype == "bf16" else "32-true", False, "auto"))
    report = chosen.prepare(model)
    assert "attention: PyTorch's CPU flash-attention kernels" in report.notes and not report.replaced.get("swiglu")
    with _autocast(dtype):
        s, n = chosen.loss_sum(model, collate(_examples(), layout, 0, 128))
    (s / n).backward()
    tol, grads = TOL[dtype], _grads(model)
    assert abs(float(s.detach()) / n - ref_loss) <= tol["loss"] * abs(ref_loss)
    for k, g in grads.items():
        assert float((g - ref_grads[k]).abs().max()) <= tol["grad"] * float(ref_grads[k].abs().max()), k


def test_cpu_fast_replaces_what_the_precision_allows_and_says_what_it_left():
    """The report of the fast backend per precision (what the run summary and manifest record)."""
    if "cpu_fast" not in BACKENDS:
        pytest.skip("no cpu_fast here")
    fp32 = select_backend("cpu_fast", RunTraits("cpu", "32-true", False, "auto")).prepare(_student("lora"))
    assert fp32.replaced == {"attention": 2, "lora_linear": 14, "rms_norm": 9, "swiglu": 2}
    bf16 = select_backend("cpu_fast", RunTraits("cpu", "bf16-mixed", False, "auto")).prepare(_student("lora"))
    assert bf16.replaced == {"attention": 2, "lora_linear": 14, "rms_norm": 9}
    assert any("swiglu: an fp32 kernel, not under bf16-mixed" in n for n in bf16.notes)
    q = select_backend("cpu_fast", RunTraits("cpu", "32-true", True, "auto")).prepare(_student("qlora"))
    assert q.replaced["lora_linear"] == 0 and any("4-bit" in n for n in q.notes)
    ref = select_backend("reference", RunTraits("cpu", "32-true", False, "auto")).prepare(_student("lora"))
    assert ref.replaced == {} and ref.backend == "reference"
