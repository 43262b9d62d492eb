"""The ``pipeline`` stage: generate -> train -> eval -> report, wired through artifact paths.

Each sub-stage runs in its own sub-directory of the run directory with its own manifest, exactly as
if it had been launched alone with the artifact pointer set (``train.dataset_dir``, ``eval.adapter_dir``,
``eval.dataset_dir``, ``report.eval_dirs``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from distill_lab.stages.common import StageResult, run_stage

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


def run(cfg: Config, run_dir: Path) -> StageResult:
    gen = run_stage("generate", replace(cfg, stage="generate"), run_dir / "generate")
    dataset = gen.artifacts["dataset"]
    if gen.incomplete is not None:  # train on a partial dataset only when asked to re-run: stop here
        return StageResult(artifacts=gen.artifacts, summary={"generate": gen.summary}, incomplete=gen.incomplete)

    from distill_lab.students.budget import check_dataset_budgets

    check_dataset_budgets(cfg.eval, cfg.student, dataset)  # a budget below the teacher's answers: stop before training
    cfg_train = replace(cfg, stage="train", train=replace(cfg.train, dataset_dir=dataset))
    train = run_stage("train", cfg_train, run_dir / "train")

    cfg_eval = replace(cfg, stage="eval",
                       eval=replace(cfg.eval, dataset_dir=dataset, adapter_dir=train.artifacts["adapter"]))
    ev = run_stage("eval", cfg_eval, run_dir / "eval")

    cfg_report = replace(cfg, stage="report", report=replace(cfg.report, eval_dirs=[str(run_dir / "eval")]))
    rep = run_stage("report", cfg_report, run_dir / "report")

    artifacts = {**gen.artifacts, **train.artifacts, **ev.artifacts, **rep.artifacts}
    report_md = rep.artifacts.get("report_md", str(run_dir / "report" / "report.md"))
    print(f"\ndistill-lab pipeline: report at {report_md}")
    return StageResult(artifacts=artifacts,
                       summary={"generate": gen.summary, "train": train.summary, "eval": ev.summary},
                       objective=ev.objective)
