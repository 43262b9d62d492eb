"""The ``report`` stage: ``report.eval_dirs`` -> the single-run report (``single.py``);
``report.sweep_dir`` (a multirun folder) -> the sweep report over every run in it (``sweep.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distill_lab.stages.common import StageResult
from distill_lab.stages.report import design, single, sweep, vote

if TYPE_CHECKING:
    from distill_lab.config import Config


def run(cfg: Config, run_dir: Path) -> StageResult:
    if cfg.report.publish_file:  # publish a saved W&B Report spec, nothing else
        from distill_lab.stages.report.wandb_report import publish_file

        url = publish_file(cfg.report.publish_file)
        return StageResult(artifacts={"wandb_report_spec": str(cfg.report.publish_file)},
                           summary={"wandb_report_url": url})
    if cfg.report.check_design:
        return design.run_check(cfg, run_dir)
    if cfg.report.vote_runs:
        return vote.run_vote(cfg, run_dir)
    if cfg.report.sweep_dir and not cfg.report.eval_dirs:
        return sweep.run_report(cfg, run_dir)
    return single.run_report(cfg, run_dir)
