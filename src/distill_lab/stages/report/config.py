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
    # resolution before spending (report/design.py): the sweep of this command's experiment, before it runs
    check_design: bool = False
    design_overrides: list[str] = field(default_factory=list)  # extra sweep overrides, as after `-m`
    design_accuracy: float = 0.5  # accuracy near which the contrast is measured (0.5: the widest)
    design_seed_sd: float = 0.05  # guessed seed-to-seed SD of a cell's accuracy (fraction)
    design_prompt_corr: float = 0.5  # correlation of a prompt's correctness between the two cells
    design_power: float = 0.8
    # voting across distilled students (report/vote.py): eval runs on the same prompts, majority vote per prompt
    vote_runs: list[str] = field(default_factory=list)
    vote_seeds: bool = False  # the vote_runs are seeds of one configuration (intervals also over seeds)
    vote_over: Optional[str] = None  # sweep report: "seed" adds, per cell, the vote of its seeds' students

    def __post_init__(self) -> None:
        _check(self.failures_per_category >= 0, "report.failures_per_category", "must be >= 0")
        _check(self.vote_over in (None, "seed"), "report.vote_over", f"must be null or seed, got {self.vote_over!r}")
        _check(not self.vote_runs or len(self.vote_runs) >= 2, "report.vote_runs",
               f"a vote needs at least 2 eval runs, got {len(self.vote_runs)}")
        _check(self.vote_over is None or bool(self.sweep_dir), "report.vote_over",
               "votes across a sweep's seeds: set report.sweep_dir too")
        _check(not self.vote_seeds or bool(self.vote_runs), "report.vote_seeds",
               "says the report.vote_runs are seeds: set report.vote_runs too")
