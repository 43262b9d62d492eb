"""The precision a training run actually runs in, from ``hardware.precision``, the machine and the model.

``hardware.precision=auto`` (the ``hardware=cpu`` default) picks the faster correct precision:
``bf16-mixed`` on GPUs. On CPU:

- where bf16 would be emulated (no AVX512-BF16 or AMX, or oneDNN capped below them by
  ``ONEDNN_MAX_CPU_ISA``): ``32-true``. Emulated bf16 made a SmolLM2 step 10-20x slower than fp32
  (AVX2-only EPYC VM), and a bf16 GEMM 13-20x slower with oneDNN capped at AVX2 on a Xeon with AMX;
- where bf16 is native: ``bf16-mixed`` for models at least ``CPU_BF16_MIN_HIDDEN`` wide, else ``32-true``.
  Measured with ``benchmarks/train_throughput.py`` on an idle 2-core Xeon with AMX (``benchmarks/README.md``,
  "Precision on a CPU with native bf16"): SmolLM2-135M (hidden 576) trained 1.38x faster in bf16-mixed
  than in fp32 (288 vs 209 supervised tokens/s), the tiny test student (hidden 128) 1.28x faster in fp32:
  its GEMMs are too small a share of a step to pay for the casts around them. Widths in between were not
  measured; fp32, never emulated, is the side ``auto`` errs on.

An explicit bf16 precision on a CPU without native bf16 also falls back to ``32-true``, with a warning.
``decide`` is a pure function of its arguments, so the decision is testable for the kinds of CPU the
tests do not run on.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

PRECISIONS = ("auto", "32-true", "bf16-mixed", "bf16-true", "16-mixed")
# hardware.precision=auto on a CPU with native bf16: bf16-mixed from this model width (hidden size) up
CPU_BF16_MIN_HIDDEN = 512
# ONEDNN_MAX_CPU_ISA values below AVX512_CORE_BF16: oneDNN (PyTorch's CPU GEMMs) then multiplies bf16
# without the bf16 instructions, however new the CPU
_ONEDNN_ISAS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})


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


def onednn_isa_cap() -> str | None:
    """``ONEDNN_MAX_CPU_ISA`` (upper-cased) when set."""
    return (os.environ.get("ONEDNN_MAX_CPU_ISA") or "").strip().upper() or None


def native_bf16(flags: frozenset[str] | set[str] | None, isa_cap: str | None = None) -> bool | None:
    """True when PyTorch multiplies bf16 natively on this CPU: AVX512-BF16 or AMX, and oneDNN not capped
    below them (``isa_cap``, from ``ONEDNN_MAX_CPU_ISA``); None when the flags are unknown."""
    if isa_cap in _ONEDNN_ISAS_WITHOUT_BF16:
        return False
    if flags is None:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def decide(configured: str, device: str, flags: frozenset[str] | set[str] | None, hidden_size: int | None = None,
           isa_cap: str | None = None) -> tuple[str, str | None]:
    """``(precision that runs, warning or None)`` for a model ``hidden_size`` wide (None: unknown)."""
    if device != "cpu":
        return ("bf16-mixed" if configured == "auto" else configured), None
    native = native_bf16(flags, isa_cap)
    if configured == "auto":
        wide = hidden_size is not None and hidden_size >= CPU_BF16_MIN_HIDDEN
        return ("bf16-mixed" if native and wide else "32-true"), None
    if configured.startswith("bf16") and native is False:
        why = (f"oneDNN is capped at ONEDNN_MAX_CPU_ISA={isa_cap}" if isa_cap in _ONEDNN_ISAS_WITHOUT_BF16 else
               "no avx512_bf16/amx_bf16 flag")
        return "32-true", (f"hardware.precision={configured}: this CPU has no native bf16 ({why}); training in "
                           "32-true instead (bf16 would be emulated, many times slower)")
    return configured, None


def hidden_size_of(config) -> int | None:
    """A transformers config's hidden size (through ``get_text_config``: a multimodal config's text
    model's), or None."""
    size = getattr(config.get_text_config(), "hidden_size", None)
    return size if isinstance(size, int) else None
