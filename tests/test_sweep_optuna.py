"""`-m experiment=optuna_lr`: Hydra's Optuna sweeper maximises the objective the stage returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent / "distill-lab"


@pytest.mark.slow
def test_optuna_sweep_maximises_the_stage_objective(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    subprocess.run([str(BIN), "generate", "student=tiny", "debug=fast", f"run_dir={tmp_path / 'gen'}"],
                   check=True, capture_output=True, timeout=600, cwd=tmp_path, env=env)
    sweep = tmp_path / "optuna"
    proc = subprocess.run([str(BIN), "train", "-m", "experiment=optuna_lr", "hydra.sweeper.n_trials=2",
                           f"train.dataset_dir={tmp_path / 'gen' / 'dataset'}", "train.max_steps=2",
                           "train.batch_size=4", "hardware=cpu_fp32", f"hydra.sweep.dir={sweep}"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(trials) == 2
    objectives, lrs = [], []
    for t in trials:
        m = json.loads((t / "manifest.json").read_text())
        objectives.append(-m["summary"]["final_loss"])
        lrs.append(m["config"]["optimizer"]["lr"])
        assert 1e-4 <= m["config"]["optimizer"]["lr"] <= 1e-2
    assert lrs[0] != lrs[1]  # the sampler chose the values, not the config's default
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(objectives))
    assert best["best_params"]["optimizer.lr"] == pytest.approx(lrs[objectives.index(max(objectives))])
