"""The precision a training run actually runs in, from ``hardware.precision`` and the machine.

``hardware.precision=auto`` (the ``hardware=cpu`` default) picks the faster correct precision for the
machine: ``bf16-mixed`` on GPUs; on CPU ``32-true`` where bf16 would be emulated, and
``CPU_AUTO_NATIVE_BF16`` for CPUs that multiply bf16 natively (AVX512-BF16 or AMX). That one is measured
(``benchmarks/README.md``, "Precision on a CPU with native bf16"): on a 2-core Xeon with AMX, this
trainer's fp32 path (C++ attention and SwiGLU kernels, folded LoRA) ran a SmolLM2 step 1.5x faster
than its bf16-mixed path, so ``auto`` keeps fp32 there too until a bf16 path beats it.
An explicit bf16 precision on a CPU without native bf16 also falls back to ``32-true``, with a warning:
emulated bf16 autocast made a SmolLM2 step 10-20x slower than fp32 (AVX2-only EPYC VM).

``decide`` is a pure function of the configured precision, the device and the CPU's flags, so the
decision is testable for the kind of CPU the tests do not run on.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PRECISIONS = ("auto", "32-true", "bf16-mixed", "bf16-true", "16-mixed")
# hardware.precision=auto on a CPU with native bf16: measured on a 2-core Xeon (AVX512-BF16 + AMX),
# SmolLM2-135M LoRA, ours: fp32 15.8 s a step against bf16-mixed 24.0 s (benchmarks/README.md)
CPU_AUTO_NATIVE_BF16 = "32-true"


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """This CPU's feature flags (``/proc/cpuinfo``), or None where they cannot be read (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return None


def native_bf16(flags: frozenset[str] | set[str] | None) -> bool | None:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX); None when unknown."""
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def decide(configured: str, device: str, flags: frozenset[str] | set[str] | None) -> tuple[str, str | None]:
    """``(precision that runs, warning or None)``."""
    if device != "cpu":
        return ("bf16-mixed" if configured == "auto" else configured), None
    native = native_bf16(flags)
    if configured == "auto":
        if native is None:
            return "32-true", None  # unknown CPU: the precision that is never emulated
        return (CPU_AUTO_NATIVE_BF16 if native else "32-true"), None
    if configured.startswith("bf16") and native is False:
        return "32-true", (f"hardware.precision={configured}: this CPU has no native bf16 (no avx512_bf16/"
                           "amx_bf16 flag); training in 32-true instead (bf16 would be emulated, many times slower)")
    return configured, None
