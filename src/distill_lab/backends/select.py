"""The backend seam: a run chooses how attention, the LM head + loss, norms and MLP gates are computed
once, at setup, and records the choice.

A backend is two calls:

- ``prepare(model) -> BackendReport``: switch the model to the backend's ops (attention function,
  forward swaps) once, and say how many modules each op replaced and why any op was left out;
- ``loss_sum(model, batch) -> (sum, n)``: the sum of next-token cross-entropies over the supervised
  targets of a training batch (``data/packing.py`` layouts: padded, padding-free, packed) and their count.

Backends (``hardware.kernels``):

- ``reference`` (``backends/reference.py``): plain transformers + peft, the path every other backend is
  compared to (``tests/test_backend_parity.py``);
- ``cpu_fast`` (``backends/cpu/``): row-segment attention without dense masks, the chunked LM head +
  loss at supervised positions only (``backends/forward.py``, ``backends/loss.py``), the fused LoRA /
  RMSNorm ops and, in fp32, the C++ SwiGLU and attention kernels;
- ``cuda_varlen`` (``backends/cuda/``): one varlen attention call per packed batch (flash, flex or
  sdpa, chosen once), the same chunked head and fused LoRA / RMSNorm ops;
- ``auto``: ``cpu_fast`` on CPU, ``cuda_varlen`` on CUDA, ``reference`` elsewhere.

``choose`` is a pure function of the run's traits (device, precision, quantisation, strategy), so the
decision is testable for machines the tests do not run on. No backend falls back per call: what a
backend cannot take is decided here, and said in the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

KERNELS = ("auto", "reference", "cpu_fast", "cuda_varlen")


class BackendError(ValueError):
    """``hardware.kernels`` names a backend that cannot run this run; the message says why."""


@dataclass(frozen=True)
class RunTraits:
    """What the choice depends on. ``precision`` is the one that runs (after the CPU decision)."""

    device: str  # cpu | cuda | ...
    precision: str  # 32-true | bf16-mixed | bf16-true
    quantized: bool  # a bitsandbytes 4-bit base (QLoRA)
    strategy: str  # auto | ddp | fsdp2


@dataclass
class BackendReport:
    """Which backend ran, how many modules each of its ops replaced, and why any op was left out."""

    backend: str
    requested: str
    device: str
    precision: str
    replaced: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        ops = ", ".join(f"{k} x{v}" for k, v in self.replaced.items()) or "none"
        notes = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (f"backend {self.backend} (hardware.kernels={self.requested}) on {self.device}, "
                f"precision {self.precision}: ops replaced: {ops}{notes}")


class Backend:
    """The interface. Subclasses set ``name`` and implement both calls."""

    name = ""

    def __init__(self, traits: RunTraits, requested: str = "auto", notes: list[str] | None = None):
        self.traits, self.requested = traits, requested
        self.notes = list(notes or [])

    def report(self, replaced: dict[str, int], notes: list[str] | None = None) -> BackendReport:
        return BackendReport(self.name, self.requested, self.traits.device, self.traits.precision,
                             replaced, self.notes + list(notes or []))

    def prepare(self, model) -> BackendReport:  # pragma: no cover - interface
        raise NotImplementedError

    def loss_sum(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:  # pragma: no cover
        raise NotImplementedError

    def loss_sums(self, model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, float, int]:
        """``loss_sum`` and, from the same forward, the loss summed over the final answer's targets (no
        gradient) and their count (``backends/forward.py::token_loss_sums``); 0, 0 where none is marked."""
        from distill_lab.backends.forward import token_loss_sums

        return token_loss_sums(model, batch)


def choose(requested: str, traits: RunTraits) -> tuple[str, list[str]]:
    """``hardware.kernels`` + the run's traits -> (backend name, notes on the choice)."""
    if requested not in KERNELS:
        raise BackendError(f"hardware.kernels: unknown backend {requested!r}; expected one of {', '.join(KERNELS)}")
    if requested == "reference":
        return "reference", ["hardware.kernels=reference: plain transformers + peft"]
    if requested == "cpu_fast":
        if traits.device != "cpu":
            raise BackendError(f"hardware.kernels=cpu_fast: runs on CPU only, this run is on {traits.device}")
        return "cpu_fast", []
    if requested == "cuda_varlen":
        if traits.device != "cuda":
            raise BackendError(f"hardware.kernels=cuda_varlen: runs on CUDA only, this run is on {traits.device}")
        return "cuda_varlen", []
    if traits.device == "cpu":
        return "cpu_fast", []
    if traits.device == "cuda":
        return "cuda_varlen", []
    return "reference", [f"auto: no fast backend for {traits.device} in this build; plain transformers + peft"]


def device_of(accelerator: str) -> str:
    """``hardware.accelerator`` -> the torch device type the run trains on."""
    if accelerator == "cpu":
        return "cpu"
    if accelerator == "gpu":
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


def select_backend(requested: str, traits: RunTraits) -> Backend:
    """The run's backend, chosen once (``choose``)."""
    name, notes = choose(requested, traits)
    if name == "cpu_fast":
        from distill_lab.backends.cpu.backend import CpuFastBackend

        return CpuFastBackend(traits, requested, notes)
    if name == "cuda_varlen":
        from distill_lab.backends.cuda.backend import CudaVarlenBackend

        return CudaVarlenBackend(traits, requested, notes)
    from distill_lab.backends.reference import ReferenceBackend

    return ReferenceBackend(traits, requested, notes)


def available(device: str) -> list[str]:
    """The backends that can run on ``device`` (what the parity suite runs)."""
    out = []
    for name in KERNELS[1:]:
        try:
            choose(name, RunTraits(device, "32-true", False, "auto"))
        except BackendError:
            continue
        out.append(name)
    return out
