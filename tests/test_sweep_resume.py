"""Sweeps resume: completed stages are skipped by config hash, a changed config is refused, a partial
sweep's report names what is missing, and a pipeline sweep killed with -9 completes when re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from distill_lab.app import compose_config
from distill_lab.errors import ConfigError
from distill_lab.stages import common
from distill_lab.stages.common import run_stage
from distill_lab.stages.report.grid import (
    GridError,
    LaunchRecorder,
    expected_grid,
    grid_status,
    record_launch,
)
from distill_lab.stages.report.sweep import collect, config_groups, expected_jobs, write_report
from distill_lab.stages.resume import config_sha256

from .test_sweep import fabricate_pipeline_sweep

GEN = ["student=tiny", "recipe.size=6", "recipe.test_size=2", "recipe.ood_size=2"]


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under root (Hydra's own .hydra/ and logs aside) -> (mtime_ns, content)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"}


def test_hash_ignores_where_a_run_goes_but_not_what_it_computes():
    a = {"stage": "train", "seed": 0, "run_dir": "/x", "sweep_name": "s1", "skip_completed": True, "train": {"lr": 1}}
    b = {**a, "run_dir": "/y", "sweep_name": "other", "skip_completed": False}
    assert config_sha256(a) == config_sha256(b)
    assert config_sha256(a) != config_sha256({**a, "seed": 1})
    assert config_sha256(a) != config_sha256({**a, "train": {"lr": 2}})


def test_completed_stage_is_skipped_untouched_and_a_changed_config_is_refused(tmp_path):
    cfg = replace(compose_config(GEN, stage="generate"), skip_completed=True)
    first = run_stage("generate", cfg, tmp_path / "g")
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["config_sha256"] == config_sha256(manifest["config"])
    before = _files(tmp_path / "g")

    again = run_stage("generate", replace(cfg, run_dir="elsewhere", sweep_name="x"), tmp_path / "g")
    assert _files(tmp_path / "g") == before  # not one byte or mtime changed
    assert again.artifacts == first.artifacts and again.summary == json.loads(json.dumps(first.summary))

    bigger = replace(cfg, recipe=replace(cfg.recipe, size=8))
    with pytest.raises(ConfigError, match=r"holds a completed 'generate' run of a different config "
                                          r"\(recipe.size: 6 -> 8\)"):
        run_stage("generate", bigger, tmp_path / "g")
    assert _files(tmp_path / "g") == before
    with pytest.raises(ConfigError, match="not a 'train' run"):
        run_stage("train", replace(compose_config(GEN, stage="train"), skip_completed=True), tmp_path / "g")

    # without skip_completed (a plain run, the default outside -m) the stage runs again
    run_stage("generate", replace(bigger, skip_completed=False), tmp_path / "g")
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["config"]["recipe"]["size"] == 8


def test_a_rerun_that_dies_leaves_no_manifest_behind(tmp_path, monkeypatch):
    cfg = compose_config(GEN, stage="generate")
    run_stage("generate", cfg, tmp_path / "g")
    assert (tmp_path / "g" / "manifest.json").is_file()

    def dies(cfg, run_dir):
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(common, "stage_function", lambda stage: dies)
    with pytest.raises(RuntimeError, match="half-way"):
        run_stage("generate", replace(cfg, recipe=replace(cfg.recipe, size=8)), tmp_path / "g")
    # the old manifest is gone: the folder cannot pass for a completed run of either config
    assert not (tmp_path / "g" / "manifest.json").exists()


def test_a_stage_that_stopped_short_runs_again(tmp_path, monkeypatch):
    """A manifest written for an incomplete result (a spend cap, failed requests) is not a completed run."""
    calls = []

    def stops_short(cfg, run_dir):
        calls.append(run_dir)
        return common.StageResult(summary={"rows": 1}, incomplete=(3, "stopped early: spend cap"))

    monkeypatch.setattr(common, "stage_function", lambda stage: stops_short)
    cfg = replace(compose_config(GEN, stage="generate"), skip_completed=True)
    run_stage("generate", cfg, tmp_path / "g")
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["incomplete"] == [3, "stopped early: spend cap"]
    run_stage("generate", cfg, tmp_path / "g")
    assert len(calls) == 2


def _multirun_yaml(sweep: Path, params: dict[str, str], task: list[str]) -> None:
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": params},
        "overrides": {"task": task}}}), sweep / "multirun.yaml")


def test_grid_is_expanded_in_hydras_launch_order(tmp_path):
    _multirun_yaml(tmp_path, {"teacher.effort": "low,high", "seed": "0,1"}, ["student=tiny", "recipe.size=10,20"])
    grid = expected_grid(tmp_path)
    assert len(grid) == 8
    assert grid[0] == {"teacher.effort": "low", "seed": "0", "student": "tiny", "recipe.size": "10"}
    assert grid[1] == {"teacher.effort": "low", "seed": "0", "student": "tiny", "recipe.size": "20"}
    assert grid[-1] == {"teacher.effort": "high", "seed": "1", "student": "tiny", "recipe.size": "20"}
    assert expected_grid(tmp_path / "nothing") is None


def test_partial_sweep_report_names_the_missing_jobs_and_cells(tmp_path):
    sweep = fabricate_pipeline_sweep(tmp_path, missing=4)  # job 4: low/300/seed 1 died before eval
    _multirun_yaml(sweep, {}, ["teacher.effort=low,high", "recipe.size=100,300", "seed=0,1,2"])
    import shutil

    shutil.rmtree(sweep / "11")  # high/300/seed 2 never started
    res = write_report(sweep, tmp_path / "out")
    assert res["summary"]["expected_jobs"] == 12 and res["summary"]["missing_jobs"] == 2
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "Partial sweep: 10 of 12 jobs of the grid (multirun.yaml) finished." in md
    assert "| teacher.effort=low, recipe.size=300 | 0, 1, 2 | 0, 2 | seeds 1 |" in md
    assert "| teacher.effort=high, recipe.size=300 | 0, 1, 2 | 0, 1 | seeds 2 |" in md
    assert "- job `4`: `teacher.effort=low recipe.size=300 seed=1`: incomplete: no metrics.json" in md
    assert "- `teacher.effort=high recipe.size=300 seed=2`: not started (no job folder)" in md
    assert "teacher.effort=low, recipe.size=100 |" not in md  # complete cells are not listed
    data = json.loads(Path(res["artifacts"]["sweep_json"]).read_text())
    assert [m["status"][:10] for m in data["grid"]["missing_jobs"]] == ["incomplete", "not starte"]


BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def test_every_launch_into_a_folder_counts_not_only_the_last(tmp_path):
    """A study's arms are separate -m commands into one folder: the grid is the union of their launches,
    in the order they first ran, each job once; the same launch again records nothing new."""
    sweep = fabricate_pipeline_sweep(tmp_path)  # 12 finished jobs: effort low/high x size 100/300 x seeds 0-2
    _multirun_yaml(sweep, {}, ["teacher.effort=high", "recipe.size=100,300", "seed=0,1,2"])  # the last launch
    assert len(expected_grid(sweep)) == 6  # before launches were recorded: multirun.yaml's grid alone
    first = record_launch(sweep, BASIC, {"seed": "0,1,2"}, ["teacher.effort=low", "recipe.size=100,300"])
    assert record_launch(sweep, BASIC, {"seed": "0,1,2"}, ["teacher.effort=low", "recipe.size=100,300"]) == first
    # the callback Hydra calls at each -m launch (conf/config.yaml: hydra.callbacks.record_launch)
    from omegaconf import OmegaConf

    LaunchRecorder().on_multirun_start(OmegaConf.create({"hydra": {
        "sweep": {"dir": str(sweep)}, "sweeper": {"_target_": BASIC, "params": {"seed": "0,1,2,3"}},
        "overrides": {"task": ["teacher.effort=high", "recipe.size=100,300"]}}}))
    assert len(list((sweep / "launches").glob("*.json"))) == 2
    grid = expected_grid(sweep)
    assert len(grid) == 6 + 8  # low x 2 sizes x 3 seeds, then high x 2 sizes x 4 seeds
    assert grid[0] == {"seed": "0", "teacher.effort": "low", "recipe.size": "100"}
    assert {g["teacher.effort"] for g in grid[6:]} == {"high"}
    md = Path(write_report(sweep, tmp_path / "out")["artifacts"]["sweep_md"]).read_text()
    assert "Partial sweep: 12 of 14 jobs of the grid (2 launches recorded in launches/) finished." in md
    assert "| teacher.effort=high, recipe.size=100 | 0, 1, 2, 3 | 0, 1, 2 | seeds 3 |" in md
    # not the basic sweeper's grid (Optuna samples its jobs): nothing to record
    assert record_launch(tmp_path / "o", "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", {},
                         []) is None and not (tmp_path / "o").exists()
    (sweep / "launches" / "bad.json").write_text("{not json")
    with pytest.raises(GridError, match=r"launches/bad.json: cannot expand the sweep grid"):
        expected_grid(sweep)


@pytest.mark.slow  # three CLI launches of ~4 s each
def test_three_cli_launches_into_one_folder_make_one_grid(tmp_path):
    cmd = [sys.executable, "-m", "distill_lab.cli", "generate", "-m", *GEN, "sweep_name=g",
           "hydra.sweep.subdir=${hydra.job.override_dirname}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    for extra in (["seed=0,1"], ["teacher.effort=high", "seed=0"], ["seed=0,1"]):  # the last: a re-run
        proc = subprocess.run([*cmd, *extra], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = tmp_path / "multirun" / "generate" / "g"
    assert len(list((sweep / "launches").glob("*.json"))) == 2
    grid = expected_grid(sweep)
    assert [(g.get("teacher.effort"), g["seed"]) for g in grid] == [(None, "0"), (None, "1"), ("high", "0")]
    assert grid_status(grid, collect(sweep)).finished == 0  # generate runs leave no student metrics


def test_hydra_calls_the_launch_recorder(tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.utils import get_class

    with initialize_config_module("distill_lab.conf", version_base="1.3"):
        cfg = compose("stages/generate", return_hydra_config=True)
    assert get_class(cfg.hydra.callbacks.record_launch._target_) is LaunchRecorder


def test_complete_grid_and_submitit_reruns_count_each_task_once(tmp_path):
    sweep = fabricate_pipeline_sweep(tmp_path)
    _multirun_yaml(sweep, {}, ["teacher.effort=low,high", "recipe.size=100,300", "seed=0,1,2"])
    status = grid_status(expected_grid(sweep), collect(sweep))
    assert status.complete and status.finished == 12
    for array in ("7", "9"):  # the same 12-task sweep submitted twice (a resumed re-run)
        for i in range(12):
            (sweep / ".submitit" / f"{array}_{i}").mkdir(parents=True)
    assert expected_jobs(sweep) == 12


def test_runs_of_different_settings_are_named_not_pooled(tmp_path):
    sweep = tmp_path / "sw"
    for seed, steps in ((0, 80), (1, 80), (2, 100)):
        job = sweep / str(seed)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        cfg = {"stage": "eval", "seed": seed, "train": {"max_steps": steps}, "teacher": {"effort": "high"},
               "recipe": {"size": 50}, "student": {"name": "tiny"}}
        (job / "manifest.json").write_text(json.dumps({"stage": "eval", "config": cfg,
                                                       "git": {"commit": f"{seed % 2}" * 40}}))
        (job / "metrics.json").write_text(json.dumps({"schema_version": 1, "models": {"student": {
            "overall": {"n": 4, "accuracy": 0.5}, "splits": {"test": {"n": 4, "accuracy": 0.5}}}}}))
    groups = config_groups(collect(sweep))
    assert sorted(groups.values()) == [["0", "1"], ["2"]]
    md = Path(write_report(sweep, tmp_path / "out")["artifacts"]["sweep_md"]).read_text()
    assert "## Runs made with different settings" in md and "jobs 0, 1" in md and "jobs 2" in md
    assert "made from 2 git commits" in md


@pytest.mark.slow  # a CLI subprocess of ~15 s on 2 cores (make test-slow runs it)
def test_generate_sweep_killed_with_sigkill_resumes(tmp_path):
    """The fast path of the kill -9 test (the generate stage only): killed as job 1 starts, re-run, job 0
    untouched, jobs 1 and 2 complete (the partial report: test_partial_sweep_report_names_...)."""
    cmd = [sys.executable, "-m", "distill_lab.cli", "generate", "-m", "student=tiny", "recipe.size=200",
           "recipe.test_size=4", "recipe.ood_size=4", "seed=0,1,2", "sweep_name=k"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    sweep = tmp_path / "multirun" / "generate" / "k"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 300
    while not (sweep / "1" / ".hydra" / "overrides.yaml").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "job 1 never started"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert (sweep / "0" / "manifest.json").is_file() and not (sweep / "1" / "manifest.json").exists()
    finished = _files(sweep / "0")
    status = grid_status(expected_grid(sweep), collect(sweep))
    assert [m["status"][:11] for m in status.missing_jobs][1:] == ["incomplete:", "not started"]

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _files(sweep / "0") == finished
    seeds = [json.loads((sweep / j / "manifest.json").read_text())["config"]["seed"] for j in "012"]
    assert seeds == [0, 1, 2]


SWEEP = ["pipeline", "-m", "student=tiny", "hardware=cpu_fp32", "hardware.threads=1", "recipe.size=8",
         "recipe.test_size=3", "recipe.ood_size=3", "train.max_steps=2", "train.batch_size=4",
         "eval.max_new_tokens=8", "eval.allow_truncation=true", "eval.include_base=false", "seed=0,1,2", "sweep_name=resume_test"]


@pytest.mark.slow
def test_pipeline_sweep_killed_with_sigkill_resumes_without_touching_finished_runs(tmp_path):
    """kill -9 while job 1 trains; the same command again: job 0 untouched, job 1 finishes from its
    completed generate stage, job 2 runs; the report before the re-run names the missing jobs."""
    cmd = [sys.executable, "-m", "distill_lab.cli", *SWEEP]
    env = {**os.environ, "WANDB_MODE": "offline"}
    sweep = tmp_path / "multirun" / "pipeline" / "resume_test"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 600
    while not (sweep / "1" / "generate" / "manifest.json").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "job 1 never reached training"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (sweep / "0" / "manifest.json").is_file() and not (sweep / "1" / "manifest.json").exists()
    finished = _files(sweep / "0")
    gen1 = _files(sweep / "1" / "generate")

    partial = write_report(sweep, tmp_path / "partial")
    md = Path(partial["artifacts"]["sweep_md"]).read_text()
    assert "Partial sweep: 1 of 3 jobs" in md
    line1 = next(line for line in md.splitlines() if line.startswith("- job `1`: "))
    assert " seed=1 " in line1 and "incomplete" in line1
    line2 = next(line for line in md.splitlines() if " seed=2 " in line)
    assert line2.startswith("- `") and line2.endswith("`: not started (no job folder)")

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    assert "pipeline already completed in" in log and "/resume_test/0 with this config" in log
    assert "generate already completed in" in log and "/resume_test/1/generate with this config" in log
    assert _files(sweep / "0") == finished  # the finished run: not one byte or mtime changed
    assert _files(sweep / "1" / "generate") == gen1
    for job in ("0", "1", "2"):
        m = json.loads((sweep / job / "manifest.json").read_text())
        assert m["stage"] == "pipeline" and m["config"]["seed"] == int(job)
    res = write_report(sweep, tmp_path / "full")
    assert res["summary"]["finished"] == 3 and res["summary"]["missing_jobs"] == 0
    # the killed launch and its re-run are one launch, recorded once (a Hydra callback: report/grid.py)
    assert "All 3 jobs of the sweep grid (1 launch recorded in launches/) finished." in Path(
        res["artifacts"]["sweep_md"]).read_text()


def test_the_base_measured_in_one_seed_only_does_not_split_the_grid_into_cells():
    """The retention study measures the base in seed 0's run (``eval.include_base=false`` in the others): its
    grid is one cell of seeds 0-3, not a cell per include_base value."""
    from types import SimpleNamespace

    grid = [{"seed": "0"}, *({"seed": str(s), "eval.include_base": "False"} for s in (1, 2, 3))]
    runs = [SimpleNamespace(params=grid[0], status="ok", job="seed=0"),
            SimpleNamespace(params=grid[1], status="incomplete", reason="no metrics.json", job="seed=1")]
    status = grid_status(grid, runs)
    assert status.cells == [{"cell": {}, "expected_seeds": ["0", "1", "2", "3"], "finished_seeds": ["0"]}]
    assert status.finished == 1 and len(status.missing_jobs) == 3
