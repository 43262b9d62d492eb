"""What every backend is: the interface (``Backend``: ``prepare`` and ``loss_sum``), what it reports
(``BackendReport``) and the run traits a choice depends on (``RunTraits``).

Its own module, below the implementations (``reference.py``, ``cpu/backend.py``, ``cuda/backend.py``)
and the selector (``select.py``) that builds them, so that no implementation imports the module that
imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


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
