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
    # Cost (sweep reports): price the rows of an unpaid teacher (the oracle) at a Claude model's list prices
    # (teachers/anthropic_models.LIST_PRICES), labelled "projected"; rows without the API's token counts are
    # counted at projected_chars_per_token characters per token (an estimate).
    projected_price_model: Optional[str] = None  # e.g. claude-opus-4-7
    projected_chars_per_token: float = 4.0
    frontier_points: float = 5.0  # "the cheapest setting within N points of the best"
    # W&B Report of a sweep (report/wandb_report.py; needs logger=wandb): written to wandb_report.json,
    # published when publish=true; publish_file=<wandb_report.json> publishes a saved one (nothing else runs)
    wandb_report: bool = False
    publish: bool = False
    publish_file: Optional[str] = None
    title: Optional[str] = None  # the W&B Report's title (default: the sweep's name)
    question: Optional[str] = None  # the study's question, a text block of the W&B Report
    method: Optional[str] = None  # the study's method (default: what the sweep's runs record)

    def __post_init__(self) -> None:
        from distill_lab.teachers.anthropic_models import LIST_PRICES, list_prices

        _check(self.failures_per_category >= 0, "report.failures_per_category", "must be >= 0")
        _check(self.projected_price_model is None or list_prices(self.projected_price_model) is not None,
               "report.projected_price_model",
               f"{self.projected_price_model!r} has no list prices; known: {', '.join(sorted(LIST_PRICES))}")
        _check(self.projected_chars_per_token > 0, "report.projected_chars_per_token", "must be > 0")
        _check(self.frontier_points >= 0, "report.frontier_points", "must be >= 0")
        _check(not self.publish or self.wandb_report, "report.publish", "needs report.wandb_report=true")
