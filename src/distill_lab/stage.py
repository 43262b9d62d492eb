"""Run one stage: resolve its function, time it, write its manifest.

A stage is a function ``run(cfg: Config, run_dir: Path) -> StageResult``; it reads only the artifacts
named in its config (``train.dataset_dir``, ``eval.adapter_dir``, ...) and writes into ``run_dir``.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.config import Config, to_container
from distill_lab.manifest import write_manifest

log = logging.getLogger(__name__)

STAGE_FUNCTIONS = {
    "generate": "distill_lab.generate:run",
    "train": "distill_lab.train.stage:run",
    "eval": "distill_lab.evaluate:run",
    "report": "distill_lab.report:run",
    "pipeline": "distill_lab.pipeline:run",
}


@dataclass
class StageResult:
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> path
    summary: dict[str, Any] = field(default_factory=dict)  # small, JSON-able
    objective: float | None = None  # what a sweeper (Optuna) maximises, when the stage has one
    # (exit code, "cause; fix") when the stage wrote its artifacts but not all that was asked (see exit_codes)
    incomplete: tuple[int, str] | None = None


def stage_function(stage: str):
    module, name = STAGE_FUNCTIONS[stage].split(":")
    return getattr(importlib.import_module(module), name)


def run_stage(stage: str, cfg: Config, run_dir: Path) -> StageResult:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: StageResult = stage_function(stage)(cfg, run_dir)
    elapsed = time.perf_counter() - t0
    path = write_manifest(run_dir, stage=stage, config=to_container(cfg), artifacts=result.artifacts,
                          timings={"total": elapsed}, summary=result.summary)
    log.info("%s finished in %.1fs; manifest: %s", stage, elapsed, path)
    return result
