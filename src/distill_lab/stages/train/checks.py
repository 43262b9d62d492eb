"""Checks across fields that config validation runs before any model is loaded or any money is spent:
which precisions the trainer can run, which backend the hardware can run, and ``train.resume``.

Each function raises ``ConfigError`` naming the field; ``config.py`` (this stage's) calls them from
``__post_init__``.
"""

from __future__ import annotations

from pathlib import Path

from distill_lab.backends.precision import PRECISIONS
from distill_lab.backends.select import KERNELS
from distill_lab.errors import ConfigError


def _error(key: str, msg: str) -> Exception:
    return ConfigError(f"{key}: {msg}")


def check_hardware(accelerator: str, strategy: str, precision: str, kernels: str) -> None:
    if precision not in PRECISIONS:
        raise _error("hardware.precision", f"must be one of {', '.join(p for p in PRECISIONS if p != '16-mixed')}, "
                                           f"got {precision!r}")
    if precision == "16-mixed":
        raise _error("hardware.precision", f"16-mixed cannot run with strategy {strategy} on {accelerator}: fp16 "
                                           "training needs a gradient scaler, which this trainer does not use; "
                                           "use auto, bf16-mixed, bf16-true or 32-true")
    if kernels not in KERNELS:
        raise _error("hardware.kernels", f"must be one of {', '.join(KERNELS)}, got {kernels!r}")
    if kernels == "cpu_fast" and accelerator != "cpu":
        raise _error("hardware.kernels", f"cpu_fast runs on CPU only, but hardware.accelerator={accelerator}")
    if kernels == "cuda_varlen" and accelerator == "cpu":
        raise _error("hardware.kernels", "cuda_varlen runs on GPUs only, but hardware.accelerator=cpu")


def check_resume(resume: str) -> None:
    if resume in ("never", "auto"):
        return
    if not resume or not Path(resume).exists():
        raise _error("train.resume", f"must be never, auto or the path of an existing checkpoint; {resume!r} "
                                     "is none of these")
