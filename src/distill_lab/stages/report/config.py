"""The ``report`` config group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check


@dataclass
class ReportConfig:
    eval_dirs: list[str] = field(default_factory=list)  # artifacts of `eval`
    sweep_dir: Optional[str] = None  # a multirun directory (or its packed evidence, *.jsonl.gz): every run in it
    # write the sweep's per-sample evidence into this one .jsonl.gz (report/samples.py) before reporting
    pack_evidence: Optional[str] = None
    output_dir: Optional[str] = None
    failures_per_category: int = 3  # example failures shown per category and split
    plots: bool = True  # PNG plots (matplotlib, Agg backend)

    def __post_init__(self) -> None:
        _check(self.failures_per_category >= 0, "report.failures_per_category", "must be >= 0")
        _check(self.pack_evidence is None or (bool(self.sweep_dir) and str(self.pack_evidence).endswith(".jsonl.gz")),
               "report.pack_evidence", "needs report.sweep_dir (a multirun folder) and a file name ending in .jsonl.gz")
