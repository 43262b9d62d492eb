"""What every stage shares: its result type, the stop it may raise, and the runner that times it and
writes its manifest.

A stage is the package ``distill_lab.stages.<package>`` whose ``run`` module has
``run(cfg: Config, run_dir: Path) -> StageResult``; it reads only the artifacts named in its config
(``train.dataset_dir``, ``eval.adapter_dir``, ...) and writes into ``run_dir``.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.manifest import config_dict, write_manifest
from distill_lab.exit_codes import StageStop
from distill_lab.stages.names import STAGE_PACKAGES

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)

# the config groups each stage reads (its manifest records these, besides seed and stage)
_ALL_GROUPS = ("teacher", "student", "recipe", "generate", "data", "optimizer", "train", "export", "hardware",
               "logger", "eval", "report", "rl")
STAGE_GROUPS = {
    "generate": ("teacher", "recipe", "generate", "logger"),
    "train": ("student", "data", "optimizer", "train", "export", "hardware", "logger"),
    "eval": ("student", "eval", "teacher", "generate", "hardware", "logger"),  # teacher + generate: eval.teacher_live
    "report": ("report", "eval", "logger"),
    "rl": ("student", "rl", "hardware", "logger"),
    "pipeline": _ALL_GROUPS,
}


def stage_config(stage: str, cfg: Config) -> dict[str, Any]:
    """The part of the config that ``stage`` reads, as a plain dict (what its manifest records)."""
    full = config_dict(cfg)
    return {k: v for k, v in full.items() if k not in _ALL_GROUPS or k in STAGE_GROUPS[stage]}


@dataclass
class StageResult:
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path
    summary: dict[str, Any] = field(default_factory=dict)  # small, JSON-able
    objective: float | None = None  # what a sweeper (Optuna) maximises, when the stage has one
    # (exit code, "cause; fix") when the stage wrote its artifacts but not all that was asked (see exit_codes)
    incomplete: tuple[int, str] | None = None


class StageStopped(StageStop):
    """An expected stop (spend cap, interrupted generation...): the CLI prints it without a traceback and
    exits with its ``exit_code`` (``distill_lab.exit_codes``)."""


def stage_function(stage: str):
    return importlib.import_module(f"distill_lab.stages.{STAGE_PACKAGES[stage]}.run").run


def stage_check(stage: str, cfg: Config) -> None:
    """The stage's own start-up checks (its ``run`` module's ``check(cfg)``, where it has one): the
    pipeline runs them before the stages ahead of it spend anything."""
    check = getattr(importlib.import_module(f"distill_lab.stages.{STAGE_PACKAGES[stage]}.run"), "check", None)
    if check is not None:
        check(cfg)


def run_stage(stage: str, cfg: Config, run_dir: Path) -> StageResult:
    """Run ``stage`` into ``run_dir`` and write its manifest; with ``cfg.skip_completed`` a stage that
    already completed there with the same config is skipped (``stages/resume.py``)."""
    from distill_lab.stages import resume
    from distill_lab.stages.slurm_requeue import requeue_on_slurm_signal

    run_dir = Path(run_dir)
    config = stage_config(stage, cfg)
    if getattr(cfg, "skip_completed", None):
        done = resume.completed(stage, config, run_dir)
        if done is not None:
            log.info("%s already completed in %s with this config (manifest.json): skipped", stage, run_dir)
            return StageResult(artifacts=done.get("artifacts") or {}, summary=done.get("summary") or {},
                               objective=done.get("objective"))
    resume.forget(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with requeue_on_slurm_signal(stage):  # train: Lightning's own (stages/slurm_requeue.py)
        result: StageResult = stage_function(stage)(cfg, run_dir)
    elapsed = time.perf_counter() - t0
    path = write_manifest(run_dir, stage=stage, config=config, artifacts=result.artifacts,
                          timings={"total": elapsed}, summary=result.summary,
                          extra={"config_sha256": resume.config_sha256(config), "objective": result.objective,
                                 "incomplete": list(result.incomplete) if result.incomplete else None})
    log.info("%s finished in %.1fs; manifest: %s", stage, elapsed, path)
    return result
