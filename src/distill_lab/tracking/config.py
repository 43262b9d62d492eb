"""The ``logger`` config group (W&B, CSV or none)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb | csv
    project: str = "distill_lab"
    entity: Optional[str] = None
    group: Optional[str] = None  # default: the sweep directory's name under -m
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"  # online | offline | disabled

    def __post_init__(self) -> None:
        _check(self.name in ("none", "wandb", "csv"), "logger.name", "must be none, wandb or csv")
        _check(self.mode in ("online", "offline", "disabled"), "logger.mode",
               "must be online, offline or disabled")
