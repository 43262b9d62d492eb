"""The ``report`` config group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check


@dataclass
class ReportConfig:
    eval_dirs: list[str] = field(default_factory=list)  # artifacts of `eval`
    sweep_dir: Optional[str] = None  # a multirun directory: collect every run in it
    output_dir: Optional[str] = None
    failures_per_category: int = 3  # example failures shown per category and split
    plots: bool = True  # PNG plots (matplotlib, Agg backend)

    def __post_init__(self) -> None:
        _check(self.failures_per_category >= 0, "report.failures_per_category", "must be >= 0")
