"""Where and in what precision the eval stage runs its HF models: bf16 autocast or not (``use_bf16``)
and the device (``place_model``, shared with the rl stage: ``stages/runtime.py``). Used by the held-out eval
(``run.py``) and the benchmark suites (``benchmark.py``), below both."""

from __future__ import annotations

from typing import TYPE_CHECKING

from distill_lab.stages.runtime import on_gpu, place_model

if TYPE_CHECKING:
    from distill_lab.config import Config

__all__ = ["place_model", "use_bf16"]


def use_bf16(cfg: Config) -> bool:
    """bf16 autocast for generation: ``eval.precision``, or for ``auto`` a bf16 ``hardware.precision``
    on a GPU (on CPU autocast re-casts every weight at each decoding step: slower than fp32 here)."""
    if cfg.eval.precision != "auto":
        return cfg.eval.precision == "bf16"
    return on_gpu(cfg) and cfg.hardware.precision in ("auto", "bf16-mixed", "bf16-true")  # auto: bf16-mixed on GPU
