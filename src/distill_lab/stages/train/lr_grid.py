"""``train.lr_grid``: the learning rate of a run chosen on a validation slice of its own train pool.

Why: rows of different efforts differ in length and in what share of their tokens is boilerplate, so one
learning rate for every effort can favour one of them; "high effort is worse" must not be "this lr is
wrong for longer rows". The procedure, per run (so per effort, size and seed of a sweep):

1. hold out ``data.val_fraction`` of the train rows (the same seeded slice in every trial; never test or
   ood rows);
2. train once per value of ``train.lr_grid`` on the rest, everything else equal (seed, data order,
   steps or token budget), each in ``<run_dir>/lr_grid/lr=<value>/``;
3. measure each trial's validation loss on the final answer's tokens (after the thinking block: the
   part every effort shares, unlike the full loss, which the trace's length dominates) after its last
   step; the lowest wins, ties to the earlier value of the grid (``choose_lr``);
4. the winner's adapter and step log become the run's (``<run_dir>/adapter``); the summary records every
   trial's losses and the choice (``lr_selection``).

A re-run skips trials that finished (their ``trial.json``), so an interrupted grid resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.errors import ConfigError
from distill_lab.stages.common import StageResult
from distill_lab.stages.train.export import export_trained

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)
TRIAL_FILE = "trial.json"


def choose_lr(scores: dict[float, float | None]) -> float:
    """The learning rate with the lowest validation answer loss (``scores`` in grid order; None or NaN
    scores are out); ties go to the earlier value. ``ConfigError`` when no trial has a score."""
    valid = [(v, lr) for lr, v in scores.items() if v is not None and not math.isnan(v)]
    if not valid:
        raise ConfigError("train.lr_grid: no trial has a validation answer loss (no validation row marks a final "
                          "answer); check data.val_fraction and the rows' assistant content")
    best = min(v for v, _ in valid)
    return next(lr for v, lr in valid if v == best)


def trial_dir(run_dir: Path, lr: float) -> Path:
    return run_dir / "lr_grid" / f"lr={lr:g}"


def run_grid(cfg: Config, run_dir: Path, train_once: Callable[..., StageResult]) -> StageResult:
    """Train once per ``train.lr_grid`` value and keep the best (module docstring)."""
    grid = list(cfg.train.lr_grid or [])
    trials: dict[float, dict[str, Any]] = {}
    for lr in grid:
        tdir = trial_dir(run_dir, lr)
        done = tdir / TRIAL_FILE
        if done.is_file():
            trials[lr] = json.loads(done.read_text())
            log.info("train.lr_grid: lr=%g already trained (%s)", lr, done)
            continue
        tcfg = dataclasses.replace(
            cfg, optimizer=dataclasses.replace(cfg.optimizer, lr=lr),
            train=dataclasses.replace(cfg.train, lr_grid=None, output_dir=None))
        log.info("train.lr_grid: training lr=%g in %s", lr, tdir)
        res = train_once(tcfg, tdir, final_val=True, exports=False)
        rec = {"lr": lr, "summary": res.summary, "artifacts": res.artifacts}
        tdir.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(rec, indent=1, default=str))
        trials[lr] = rec
    scores = {lr: trials[lr]["summary"].get("val_loss_answer") for lr in grid}
    chosen = choose_lr(scores)
    best = trials[chosen]
    adapter = run_dir / "adapter"
    if adapter.exists():
        shutil.rmtree(adapter)
    shutil.copytree(best["artifacts"]["adapter"], adapter)
    step_log = run_dir / "train_log.jsonl"
    shutil.copyfile(best["artifacts"]["train_log"], step_log)
    artifacts = {"adapter": str(adapter), "train_log": str(step_log), "lr_grid": str(run_dir / "lr_grid")}
    export_trained(cfg, run_dir, adapter, artifacts)
    summary = dict(best["summary"])
    summary["lr_selection"] = {
        "grid": grid, "chosen": chosen, "criterion": "lowest validation loss on the final answer's tokens",
        "val_rows": summary.get("rows", {}).get("val"),
        "trials": {f"{lr:g}": {"val_loss_answer": trials[lr]["summary"].get("val_loss_answer"),
                               "val_loss": trials[lr]["summary"].get("val_loss"),
                               "final_loss": trials[lr]["summary"].get("final_loss")} for lr in grid}}
    log.info("train.lr_grid: chose lr=%g (validation answer loss %s)", chosen,
             {f"{lr:g}": scores[lr] for lr in grid})
    final = summary.get("final_loss")
    return StageResult(artifacts=artifacts, summary=summary, objective=-final if final is not None else None)
