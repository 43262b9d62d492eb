"""Helpers for the train tests: a small oracle dataset and an in-process train run on the tiny student."""

from __future__ import annotations

import json
from pathlib import Path

from distill_lab.stages.common import StageResult, run_stage
from tests.conftest import compose_config


def make_dataset(root: Path, size: int = 32, effort: str = "medium") -> Path:
    """An addition dataset written by the real generate stage (oracle teacher); returns its folder."""
    out = root / f"gen-{size}-{effort}"
    if not (out / "dataset" / "rows.jsonl").is_file():
        cfg = compose_config(["debug=fast", f"recipe.size={size}", f"teacher.effort={effort}",
                              f"run_dir={out}"], stage="generate")
        run_stage("generate", cfg, out)
    return out / "dataset"


def train(dataset: Path, run_dir: Path, *overrides: str) -> StageResult:
    """``distill-lab train student=tiny hardware=cpu_fp32 ...`` in this process."""
    cfg = compose_config(["student=tiny", "hardware=cpu_fp32", f"train.dataset_dir={dataset}",
                          f"run_dir={run_dir}", "optimizer.warmup_steps=0", *overrides], stage="train")
    return run_stage("train", cfg, run_dir)


def step_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in step_log(run_dir) if "loss" in r]
