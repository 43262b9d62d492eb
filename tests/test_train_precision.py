"""Precision and backend choice of a training run: bf16-mixed trains on CPU through ``distill-lab train``
in every batch layout; ``hardware.precision=auto`` picks per CPU kind; the summary and the manifest
record what ran; bad precisions, backends and resume values fail at validation, before any model loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.backends.precision import CPU_BF16_MIN_HIDDEN, cpu_flags, decide, native_bf16, onednn_isa_cap
from distill_lab.backends.select import BackendError, RunTraits, choose
from distill_lab.config import ConfigError
from tests.conftest import REPO, compose_config
from tests.train_support import make_dataset

NATIVE = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
AVX2_ONLY = frozenset({"avx2", "fma", "f16c"})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("prec-data"), size=16)


def _layout(data: dict) -> str:
    return "packed" if data["packing"] else "padding_free" if data["padding_free"] else "padded"


def test_forced_bf16_mixed_trains_through_the_cli_in_every_layout(dataset, tmp_path):
    """The `make demo` crash (RuntimeError in the CPU row attention under bf16 autocast) cannot come back:
    one `distill-lab train -m` over padded, padding-free and packed batches, forced bf16-mixed. On a CPU
    without native bf16 the same command trains in 32-true (with the fallback's warning); the next test
    runs bf16-mixed through the stage on any CPU."""
    native = native_bf16(cpu_flags(), onednn_isa_cap())
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "distill_lab.cli", "train", "-m", "student=tiny", "hardware=cpu",
           "hardware.precision=bf16-mixed", f"train.dataset_dir={dataset}", "train.max_steps=3",
           "train.batch_size=4", "optimizer.warmup_steps=0", "data.packing=false,true",
           "data.padding_free=false,true", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = "bf16-mixed" if native else "32-true"
    ops = {"attention": 2, "lora_linear": 14, "rms_norm": 9} | ({} if native else {"swiglu": 2})  # tiny: 2 layers
    assert native or "no native bf16" in proc.stdout + proc.stderr
    layouts = {}
    for manifest in sorted(sweep.glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        s = layouts[_layout(m["config"]["data"])] = m["summary"]
        assert (s["precision"], s["precision_configured"]) == (ran, "bf16-mixed")
        assert s["backend"]["backend"] == "cpu_fast" and s["backend"]["precision"] == ran
        assert s["backend"]["replaced"] == ops
        assert s["steps"] == 3 and s["final_loss"] == s["final_loss"] and s["final_loss"] < 10  # not NaN
    assert set(layouts) == {"padded", "padding_free", "packed"}
    # the same rows in each layout: the same per-step loss up to bf16 rounding
    first = [layouts[k]["first_loss"] for k in ("padded", "padding_free", "packed")]
    assert max(first) - min(first) < 0.05 * first[0], first


@pytest.mark.parametrize("packing, padding_free", [(False, False), (False, True), (True, True)])
def test_bf16_mixed_trains_through_the_stage_in_every_layout_on_any_cpu(dataset, tmp_path, monkeypatch,
                                                                        packing, padding_free):
    """The CPU's flags reported as native bf16, so bf16-mixed runs even on a CPU that emulates it (slowly:
    the tiny student, 2 steps): the stage's bf16 path in each layout on every machine the suite runs on."""
    from distill_lab.backends import precision as prec
    from tests.train_support import train

    monkeypatch.setattr(prec, "cpu_flags", lambda: NATIVE)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    res = train(dataset, tmp_path, "hardware=cpu", "hardware.precision=bf16-mixed", "train.max_steps=2",
                f"data.packing={str(packing).lower()}", f"data.padding_free={str(padding_free).lower()}")
    s = res.summary
    assert (s["precision"], s["backend"]["precision"]) == ("bf16-mixed", "bf16-mixed")
    assert s["backend"]["replaced"] == {"attention": 2, "lora_linear": 14, "rms_norm": 9}
    assert s["steps"] == 2 and 0 < s["final_loss"] < 10


def test_a_cpu_capped_at_avx2_trains_forced_bf16_in_fp32_with_a_warning(dataset, tmp_path):
    """This CPU run as an AVX2-only one: oneDNN and PyTorch's own kernels capped at AVX2 through their
    environment variables (a bf16 GEMM is 13-20x slower there). `hardware.precision=bf16-mixed` falls
    back to 32-true with a warning that names the cap, and the fp32 fast path trains under AVX2 code."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "distill_lab.cli", "train", "student=tiny", "hardware=cpu",
           "hardware.precision=bf16-mixed", f"train.dataset_dir={dataset}", "train.max_steps=2",
           "optimizer.warmup_steps=0", f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no native bf16 (oneDNN is capped at ONEDNN_MAX_CPU_ISA=AVX2)" in proc.stdout + proc.stderr
    s = json.loads((run / "manifest.json").read_text())["summary"]
    assert (s["precision"], s["precision_configured"]) == ("32-true", "bf16-mixed")
    assert s["backend"]["replaced"] == {"attention": 2, "lora_linear": 14, "rms_norm": 9, "swiglu": 2}
    assert s["steps"] == 2 and 0 < s["final_loss"] < 10


@pytest.mark.parametrize("flags, hidden, expected", [
    (NATIVE, 576, "bf16-mixed"),  # SmolLM2-135M: measured 1.38x faster in bf16-mixed
    (NATIVE, CPU_BF16_MIN_HIDDEN, "bf16-mixed"),
    (NATIVE, CPU_BF16_MIN_HIDDEN - 1, "32-true"),
    (NATIVE, 128, "32-true"),  # the tiny student: measured 1.28x faster in fp32
    (NATIVE, None, "32-true"),  # width unknown
    (AVX2_ONLY, 576, "32-true"), (AVX2_ONLY, 128, "32-true"),  # bf16 would be emulated
    (None, 576, "32-true")])  # flags unknown: never risk emulation
def test_auto_precision_on_cpu_follows_the_measured_choice_and_never_emulates_bf16(flags, hidden, expected):
    assert decide("auto", "cpu", flags, hidden) == (expected, None)


def test_onednn_capped_below_bf16_counts_as_a_cpu_without_native_bf16():
    """ONEDNN_MAX_CPU_ISA=AVX2 on a CPU with AMX: oneDNN multiplies bf16 without the bf16 instructions
    (a bf16 GEMM measured 13-20x slower than fp32), so auto keeps fp32 and a forced bf16 falls back."""
    assert decide("auto", "cpu", NATIVE, 576, "AVX2") == ("32-true", None)
    precision, warning = decide("bf16-mixed", "cpu", NATIVE, 576, "AVX512_CORE")
    assert precision == "32-true" and "ONEDNN_MAX_CPU_ISA=AVX512_CORE" in warning
    assert decide("auto", "cpu", NATIVE, 576, "AVX512_CORE_AMX") == ("bf16-mixed", None)
    assert decide("auto", "cpu", NATIVE, 576, "ALL") == ("bf16-mixed", None)


def test_the_cap_is_read_from_the_environment(monkeypatch):
    from distill_lab.backends.precision import onednn_isa_cap

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert onednn_isa_cap() == "AVX2"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert onednn_isa_cap() is None


def test_hidden_size_of_a_plain_and_a_multimodal_config():
    from transformers import Gemma3Config, LlamaConfig, PretrainedConfig

    from distill_lab.backends.precision import hidden_size_of

    assert hidden_size_of(LlamaConfig(hidden_size=576)) == 576
    assert hidden_size_of(Gemma3Config(text_config={"hidden_size": 640})) == 640
    assert hidden_size_of(PretrainedConfig()) is None


def test_explicit_bf16_on_an_avx2_only_cpu_falls_back_to_fp32_with_a_warning():
    precision, warning = decide("bf16-mixed", "cpu", AVX2_ONLY)
    assert precision == "32-true" and "no native bf16" in warning and "hardware.precision=bf16-mixed" in warning
    assert decide("bf16-true", "cpu", AVX2_ONLY)[0] == "32-true"
    assert decide("bf16-mixed", "cpu", NATIVE) == ("bf16-mixed", None)
    assert decide("32-true", "cpu", NATIVE) == ("32-true", None)
    assert decide("auto", "cuda", None) == ("bf16-mixed", None)
    assert decide("bf16-true", "cuda", None) == ("bf16-true", None)


def test_the_stage_records_the_precision_that_ran_not_the_one_asked_for(dataset, tmp_path, monkeypatch):
    """On a CPU without native bf16 (simulated) `hardware=cpu hardware.precision=bf16-mixed` trains in fp32:
    summary and manifest say 32-true, and the backend report says which fast ops ran."""
    from distill_lab.backends import precision as prec
    from tests.train_support import train

    monkeypatch.setattr(prec, "cpu_flags", lambda: AVX2_ONLY)
    res = train(dataset, tmp_path, "hardware=cpu", "hardware.precision=bf16-mixed", "train.max_steps=2")
    assert res.summary["precision"] == "32-true" and res.summary["precision_configured"] == "bf16-mixed"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["summary"]["precision"] == "32-true"
    assert manifest["summary"]["backend"]["replaced"] == {"attention": 2, "lora_linear": 14, "rms_norm": 9,
                                                          "swiglu": 2}


def test_auto_decides_from_the_loaded_students_width_and_records_it(dataset, tmp_path, monkeypatch):
    """`hardware=cpu` (precision auto) on a CPU with native bf16 (simulated): the tiny student (hidden 128)
    trains in 32-true; with the width threshold lowered to 128 the same run trains in bf16-mixed, read from
    the loaded model's config; summary and backend report say what ran."""
    from distill_lab.backends import precision as prec
    from tests.train_support import train

    monkeypatch.setattr(prec, "cpu_flags", lambda: NATIVE)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    res = train(dataset, tmp_path / "narrow", "hardware=cpu", "train.max_steps=1")
    assert (res.summary["precision"], res.summary["precision_configured"]) == ("32-true", "auto")
    monkeypatch.setattr(prec, "CPU_BF16_MIN_HIDDEN", 128)
    res = train(dataset, tmp_path / "wide", "hardware=cpu", "train.max_steps=1")
    assert (res.summary["precision"], res.summary["precision_configured"]) == ("bf16-mixed", "auto")
    assert res.summary["backend"]["precision"] == "bf16-mixed" and "swiglu" not in res.summary["backend"]["replaced"]


def test_choice_of_backend():
    cpu = RunTraits("cpu", "32-true", False, "auto")
    assert choose("auto", cpu)[0] == "cpu_fast"
    assert choose("reference", cpu)[0] == "reference"
    assert choose("auto", RunTraits("cuda", "bf16-mixed", False, "fsdp2"))[0] == "cuda_varlen"
    name, notes = choose("auto", RunTraits("mps", "32-true", False, "auto"))
    assert name == "reference" and "no fast backend for mps" in notes[0]
    with pytest.raises(BackendError, match="cpu_fast: runs on CPU only"):
        choose("cpu_fast", RunTraits("cuda", "bf16-mixed", False, "auto"))
    with pytest.raises(BackendError, match="cuda_varlen: runs on CUDA only"):
        choose("cuda_varlen", cpu)


@pytest.mark.parametrize("override, field, words", [
    ("hardware.precision=16-mixed", "hardware.precision", "gradient scaler"),
    ("hardware.precision=fp8", "hardware.precision", "must be one of"),
    ("hardware.kernels=triton", "hardware.kernels", "must be one of auto, reference, cpu_fast, cuda_varlen"),
    ("hardware=gpu1", "hardware.kernels", "cpu_fast runs on CPU only"),
    ("hardware.kernels=cuda_varlen", "hardware.kernels", "cuda_varlen runs on GPUs only"),
    ("train.resume=sometimes", "train.resume", "must be never, auto or the path"),
    ("train.resume=/nonexistent/step-000010.ckpt", "train.resume", "must be never, auto or the path"),
])
def test_validation_rejects_what_the_run_cannot_do_before_loading_anything(override, field, words):
    extra = ["hardware.kernels=cpu_fast"] if override == "hardware=gpu1" else []
    with pytest.raises(ConfigError, match=rf"^{field}: .*{words}"):
        compose_config(["student=tiny", override, *extra], stage="train")


def test_resume_from_an_existing_path_and_auto_validate(tmp_path):
    ckpt = tmp_path / "step-000001.ckpt"
    ckpt.write_bytes(b"x")
    assert compose_config([f"train.resume={ckpt}"], stage="train").train.resume == str(ckpt)
    assert compose_config(["train.resume=auto"], stage="train").train.resume == "auto"
