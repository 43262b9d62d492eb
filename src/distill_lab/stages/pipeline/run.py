"""The ``pipeline`` stage: generate -> train -> eval -> report, wired through artifact paths.

With ``rl.enabled=true`` it is generate -> train -> rl -> eval -> report: ``rl`` starts from train's
adapter, ``eval/`` evaluates the SFT adapter as before and ``eval_rl/`` the RL'd one on the same prompts
(same config otherwise), and the report puts base, SFT and SFT+RL side by side, then one section per eval run.

Each sub-stage runs in its own sub-directory of the run directory with its own manifest, exactly as
if it had been launched alone with the artifact pointer set (``train.dataset_dir``, ``eval.adapter_dir``,
``eval.dataset_dir``, ``report.eval_dirs``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from distill_lab.stages.common import StageResult, run_stage, stage_check

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
    if cfg.rl.enabled:  # rl's budget against the teacher's answers, before any training
        stage_check("rl", replace(cfg, stage="rl", rl=replace(cfg.rl, dataset_dir=dataset)))
    train = run_stage("train", cfg_train, run_dir / "train")

    cfg_eval = replace(cfg, stage="eval",
                       eval=replace(cfg.eval, dataset_dir=dataset, adapter_dir=train.artifacts["adapter"]))
    rl = None
    if cfg.rl.enabled:
        cfg_rl = replace(cfg, stage="rl", rl=replace(cfg.rl, adapter_dir=train.artifacts["adapter"], dataset_dir=dataset))
        rl = run_stage("rl", cfg_rl, run_dir / "rl")
    ev = run_stage("eval", cfg_eval, run_dir / "eval")
    eval_dirs = [str(run_dir / "eval")]
    ev_rl = None
    if rl is not None:
        cfg_eval_rl = replace(cfg_eval, eval=replace(cfg_eval.eval, adapter_dir=rl.artifacts["adapter"]))
        ev_rl = run_stage("eval", cfg_eval_rl, run_dir / "eval_rl")
        eval_dirs.append(str(run_dir / "eval_rl"))

    cfg_report = replace(cfg, stage="report", report=replace(cfg.report, eval_dirs=eval_dirs))
    rep = run_stage("report", cfg_report, run_dir / "report")

    artifacts = {**gen.artifacts, **train.artifacts, **ev.artifacts, **rep.artifacts}
    if rl is not None and ev_rl is not None:
        artifacts.update({"rl_adapter": rl.artifacts["adapter"], "rl_log": rl.artifacts["rl_log"],
                          "metrics_rl": ev_rl.artifacts["metrics"]})
    report_md = rep.artifacts.get("report_md", str(run_dir / "report" / "report.md"))
    print(f"\ndistill-lab pipeline: report at {report_md}")
    summary = {"generate": gen.summary, "train": train.summary, "eval": ev.summary}
    if rl is not None and ev_rl is not None:
        summary.update(rl=rl.summary, eval_rl=ev_rl.summary)
    return StageResult(artifacts=artifacts, summary=summary,
                       objective=ev_rl.objective if ev_rl is not None else ev.objective)
