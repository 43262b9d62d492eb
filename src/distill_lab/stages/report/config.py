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
    # resolution before spending (report/design.py): the sweep of this command's experiment, before it runs
    check_design: bool = False
    design_overrides: list[str] = field(default_factory=list)  # extra sweep overrides, as after `-m`
    design_accuracy: float = 0.5  # accuracy near which the contrast is measured (0.5: the widest)
    design_seed_sd: float = 0.05  # guessed seed-to-seed SD of a cell's accuracy (fraction)
    design_prompt_corr: float = 0.5  # correlation of a prompt's correctness between the two cells
    design_power: float = 0.8
    # a finished pilot sweep (folder or packed samples.jsonl.gz): its measured accuracy, seed SD and prompt
    # correlation replace the three above, per split, unless set on the command line (report/pilot.py)
    design_pilot: Optional[str] = None
    # voting across distilled students (report/vote.py): eval runs on the same prompts, majority vote per prompt
    vote_runs: list[str] = field(default_factory=list)
    vote_seeds: bool = False  # the vote_runs are seeds of one configuration (intervals also over seeds)
    # sweep report, per cell: "seed" adds the vote of its seeds' students; "stage" the vote of its runs' SFT and
    # SFT+RL students together (pipeline rl.enabled=true: each run's eval/ and eval_rl/ students are two members).
    # Two students of one run outside a sweep: report.vote_runs=[<job>/eval,<job>/eval_rl]
    vote_over: Optional[str] = None
    # the sweep's control arm, as its swept settings "key=value" (value null: the setting not given): every other
    # cell is contrasted with it, paired on seed and prompts, overall and per category (report/contrasts.py).
    # On the command line: "report.baseline=['recipe.effort_mix=null','recipe.edge_case_share=null']"
    baseline: list[str] = field(default_factory=list)

    def modes(self) -> list[str]:
        """The settings that pick what the report does (``report/run.py``), those that are set; the eval
        runs' report (``eval_dirs``) is the default."""
        return [k for k, on in (("report.publish_file", bool(self.publish_file)),
                                ("report.check_design", self.check_design),
                                ("report.vote_runs", bool(self.vote_runs)),
                                ("report.sweep_dir", bool(self.sweep_dir))) if on]

    def __post_init__(self) -> None:
        from distill_lab.teachers.anthropic_models import LIST_PRICES, list_prices

        _check(self.failures_per_category >= 0, "report.failures_per_category", "must be >= 0")
        _check(self.projected_price_model is None or list_prices(self.projected_price_model) is not None,
               "report.projected_price_model",
               f"{self.projected_price_model!r} has no list prices; known: {', '.join(sorted(LIST_PRICES))}")
        _check(self.projected_chars_per_token > 0, "report.projected_chars_per_token", "must be > 0")
        _check(self.frontier_points >= 0, "report.frontier_points", "must be >= 0")
        _check(not self.publish or self.wandb_report, "report.publish", "needs report.wandb_report=true")
        _check(self.vote_over in (None, "seed", "stage"), "report.vote_over",
               f"must be null, seed or stage, got {self.vote_over!r}")
        _check(not self.vote_runs or len(self.vote_runs) >= 2, "report.vote_runs",
               f"a vote needs at least 2 eval runs, got {len(self.vote_runs)}")
        _check(self.vote_over is None or bool(self.sweep_dir), "report.vote_over",
               "votes within a sweep's cells: set report.sweep_dir too")
        _check(not self.baseline or bool(self.sweep_dir), "report.baseline",
               "names a sweep's control arm by its swept settings: set report.sweep_dir too")
        bad = [b for b in self.baseline if "=" not in str(b) or not str(b).split("=", 1)[0].strip()]
        _check(not bad, "report.baseline", f"each item is key=value (null: the setting not given), got {bad}")
        _check(not self.vote_seeds or bool(self.vote_runs), "report.vote_seeds",
               "says the report.vote_runs are seeds: set report.vote_runs too")
        _check(self.design_pilot is None or self.check_design, "report.design_pilot",
               "measures the design check's assumptions: set report.check_design=true too")
        modes = self.modes()
        _check(len(modes) <= 1, modes[-1] if modes else "report",
               f"the report does one thing a run, and {', '.join(modes)} are all set: run them one at a time")
        _check(not (self.sweep_dir and self.eval_dirs), "report.sweep_dir",
               "a report is of report.eval_dirs (one or more eval runs) or of report.sweep_dir (a sweep), not both")
        _check(self.pack_evidence is None or (bool(self.sweep_dir) and str(self.pack_evidence).endswith(".jsonl.gz")),
               "report.pack_evidence", "needs report.sweep_dir (a multirun folder) and a file name ending in .jsonl.gz")
