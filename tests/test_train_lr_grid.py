"""``train.lr_grid``: the learning rate chosen per run on a validation slice of the train pool.

- ``choose_lr``: lowest validation answer loss, ties to the earlier grid value, missing/NaN scores out,
  none at all a config error;
- ``run_grid`` (with a stand-in trainer): one trial per value with only the lr changed and validation
  forced, the winner's adapter and log become the run's, the choice is recorded, a re-run reuses
  finished trials;
- the real train stage on the tiny student: trials trained, scored on held-out train rows, recorded.
"""

from __future__ import annotations

import json
import math

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.common import StageResult
from distill_lab.stages.train.lr_grid import choose_lr, run_grid
from tests.conftest import compose_config
from tests.train_support import make_dataset, train


def test_choose_lr():
    assert choose_lr({1e-4: 0.9, 3e-4: 0.5, 1e-3: 0.7}) == 3e-4
    assert choose_lr({1e-4: 0.5, 3e-4: 0.5}) == 1e-4  # a tie: the earlier value
    assert choose_lr({1e-4: None, 3e-4: math.nan, 1e-3: 2.0}) == 1e-3
    with pytest.raises(ConfigError, match=r"train\.lr_grid"):
        choose_lr({1e-4: None, 3e-4: math.nan})


def test_run_grid_keeps_the_best_trial_and_resumes(tmp_path, monkeypatch):
    cfg = compose_config(["student=tiny", "train.lr_grid=[1e-4,1e-3,1e-2]", "optimizer.lr=5e-1",
                          "train.export_merged=true"], stage="train")
    calls = []
    score = {1e-4: 0.8, 1e-3: 0.3, 1e-2: 0.6}
    exported = []
    monkeypatch.setattr("distill_lab.stages.train.lr_grid.export_trained",
                        lambda c, run_dir, adapter, artifacts: exported.append((run_dir, adapter.name)))

    def fake_train(tcfg, run_dir, *, final_val=False, exports=True):
        lr = tcfg.optimizer.lr
        # a trial keeps the run's export settings (so its early checks run) but exports nothing itself
        assert exports is False and tcfg.train.export_merged is True
        calls.append((lr, final_val, tcfg.train.lr_grid, tcfg.seed))
        (run_dir / "adapter").mkdir(parents=True)
        (run_dir / "adapter" / "lr.txt").write_text(str(lr))
        (run_dir / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": lr}) + "\n")
        return StageResult(artifacts={"adapter": str(run_dir / "adapter"), "train_log": str(run_dir / "train_log.jsonl")},
                           summary={"final_loss": lr, "val_loss": 2 * score[lr], "val_loss_answer": score[lr],
                                    "rows": {"train": 9, "val": 3}})

    res = run_grid(cfg, tmp_path, fake_train)
    assert [c[0] for c in calls] == [1e-4, 1e-3, 1e-2]
    assert all(c[1] is True and c[2] is None and c[3] == cfg.seed for c in calls)
    sel = res.summary["lr_selection"]
    assert sel["chosen"] == 1e-3 and sel["grid"] == [1e-4, 1e-3, 1e-2] and sel["val_rows"] == 3
    assert sel["trials"]["0.01"]["val_loss_answer"] == 0.6
    assert res.summary["final_loss"] == 1e-3  # the winner's summary
    assert (tmp_path / "adapter" / "lr.txt").read_text() == "0.001"
    assert json.loads((tmp_path / "train_log.jsonl").read_text())["loss"] == 1e-3
    assert exported == [(tmp_path, "adapter")]  # once, from the chosen adapter
    calls.clear()
    again = run_grid(cfg, tmp_path, fake_train)  # finished trials are not trained again
    assert calls == [] and again.summary["lr_selection"]["chosen"] == 1e-3


def test_lr_grid_on_the_tiny_student(tmp_path):
    ds = make_dataset(tmp_path, size=16, effort="medium")
    res = train(ds, tmp_path / "run", "train.lr_grid=[1e-5,3e-3]", "train.max_steps=3", "train.batch_size=2",
                "data.val_fraction=0.25")
    sel = res.summary["lr_selection"]
    trials = sel["trials"]
    assert set(trials) == {"1e-05", "0.003"} and sel["val_rows"] == 4
    scores = {lr: trials[f"{lr:g}"]["val_loss_answer"] for lr in (1e-5, 3e-3)}
    assert all(v is not None for v in scores.values()) and scores[1e-5] != scores[3e-3]
    assert sel["chosen"] == min(scores, key=scores.get)
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert (tmp_path / "run" / "lr_grid" / "lr=0.003" / "trial.json").is_file()
