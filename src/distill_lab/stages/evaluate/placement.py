"""Where and in what precision the eval stage runs its HF models: bf16 autocast or not (``use_bf16``)
and the device (``place_model``). Shared by the held-out eval (``run.py``) and the benchmark suites
(``benchmark.py``), below both."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill_lab.config import Config


def use_bf16(cfg: Config) -> bool:
    """bf16 autocast for generation: ``eval.precision``, or for ``auto`` a bf16 ``hardware.precision``
    on a GPU (on CPU autocast re-casts every weight at each decoding step: slower than fp32 here)."""
    import torch

    if cfg.eval.precision != "auto":
        return cfg.eval.precision == "bf16"
    on_gpu = cfg.hardware.accelerator in ("gpu", "auto") and torch.cuda.is_available()
    return on_gpu and cfg.hardware.precision in ("auto", "bf16-mixed", "bf16-true")  # auto: bf16-mixed on GPU


def place_model(model: Any, cfg: Config) -> Any:
    """The model on the GPU when the run may use one and one is there, else where it is."""
    import torch

    if cfg.hardware.accelerator in ("gpu", "auto") and torch.cuda.is_available():
        model = model.to("cuda")
    return model
