"""Sweep collection and aggregation over run dirs laid out as `-m` writes them (pipeline and eval)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from distill_lab.artifacts.dataset import DatasetInfo
from distill_lab.stages.report.sweep import SweepError, aggregate, collect, write_report
from distill_lab.stats import seed_interval, t_quantile


def _metrics(student: dict[str, float], teacher: dict[str, float], base: dict[str, float],
             dataset_dir: str | None = None) -> dict:
    def block(acc):
        return {"n": 40, "accuracy": acc, "accuracy_ci": [max(0, acc - 0.1), min(1, acc + 0.1)]}

    models = {m: {"overall": block(sum(a.values()) / len(a)), "splits": {s: block(v) for s, v in a.items()}}
              for m, a in (("student", student), ("teacher", teacher), ("base", base))}
    retention = {"student": {"overall": {"value": None},
                             "splits": {s: {"all": {"value": student[s] / teacher[s] if teacher[s] else None}}
                                        for s in student}}}
    return {"schema_version": 1, "dataset_dir": dataset_dir, "models": models, "retention": retention}


def _config(effort: str, size: int, seed: int, stage: str = "pipeline") -> dict:
    return {"stage": stage, "seed": seed, "teacher": {"provider": "oracle", "model": "oracle-v1", "effort": effort},
            "recipe": {"size": size}, "student": {"name": "tiny"}}


def _dataset(dataset_dir: Path, effort: str, size: int, rows: dict[str, int], cost_usd: float) -> None:
    """The dataset record the generate stage writes beside its rows (``dataset.json``)."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    DatasetInfo(recipe="arithmetic", size=size, test_size=40, ood_size=40, recipe_seed=0, teacher_provider="oracle",
                teacher_model="oracle-v1", effort=effort, rows=rows, cost_usd=cost_usd).write(dataset_dir)


def _overrides(job: Path, items: list[str]) -> None:
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {i}\n" for i in items))


def _accuracy(effort: str, size: int, seed: int) -> float:
    """A known ground truth: grows with size and effort, plus a seed offset."""
    return min(1.0, 0.1 * {"low": 1, "high": 2}[effort] + 0.001 * size + 0.01 * seed)


def fabricate_pipeline_sweep(root: Path, cost_per_row: float = 0.0, missing: int | None = None) -> Path:
    sweep = root / "multirun" / "pipeline" / "2026-11-25" / "10-00-00"
    n = 0
    for effort in ("low", "high"):
        for size in (100, 300):
            for seed in (0, 1, 2):
                job = sweep / str(n)
                _overrides(job, ["stage=pipeline", f"teacher.effort={effort}", f"recipe.size={size}", f"seed={seed}"])
                if n == missing:  # died in training: hydra files only
                    n += 1
                    continue
                _dataset(job / "generate" / "dataset", effort, size, {"train": size, "test": 40, "ood": 40},
                         cost_per_row * (size + 80))
                (job / "train").mkdir()
                (job / "train" / "manifest.json").write_text(json.dumps({
                    "stage": "train", "config": _config(effort, size, seed, "train"),
                    "summary": {"final_loss": 1.0 / (1 + seed)}}))
                acc = _accuracy(effort, size, seed)
                (job / "eval").mkdir()
                (job / "eval" / "metrics.json").write_text(json.dumps(_metrics(
                    {"test": acc, "ood": acc / 2}, {"test": 1.0, "ood": 0.8}, {"test": 0.05, "ood": 0.0})))
                (job / "manifest.json").write_text(json.dumps({
                    "stage": "pipeline", "config": _config(effort, size, seed), "timings_s": {"total": 12.5},
                    "summary": {}}))
                n += 1
    return sweep


def test_t_quantile_matches_tables():
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=2e-3)
    assert t_quantile(0.975, 2) == pytest.approx(4.303, abs=1e-3)
    assert t_quantile(0.975, 30) == pytest.approx(2.042, abs=1e-3)
    assert t_quantile(0.95, 5) == pytest.approx(2.015, abs=1e-3)
    with pytest.raises(ValueError, match="df"):
        t_quantile(0.975, 0)


def test_seed_interval():
    r = seed_interval([0.5, 0.6, 0.7])
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert r["mean"] == pytest.approx(0.6) and r["std"] == pytest.approx(0.1) and r["n"] == 3
    assert r["ci"] == pytest.approx([0.6 - half, 0.6 + half], abs=1e-4)
    assert seed_interval([0.4])["ci"] is None and seed_interval([])["mean"] is None


def test_collect_and_aggregate_a_pipeline_sweep(tmp_path):
    sweep = fabricate_pipeline_sweep(tmp_path)
    runs = collect(sweep)
    assert len(runs) == 12 and all(r.status == "ok" for r in runs)
    r5 = next(r for r in runs if r.job == "5")
    assert (r5.effort, r5.size, r5.seed, r5.train_rows) == ("low", 300, 2, 300)
    assert r5.accuracy["student"]["test"] == pytest.approx(_accuracy("low", 300, 2))
    assert r5.retention["ood"] == pytest.approx(_accuracy("low", 300, 2) / 2 / 0.8)
    assert r5.train_loss == pytest.approx(1 / 3) and r5.cost_usd == 0.0

    rows = aggregate(runs)
    assert [(r["effort"], r["size"]) for r in rows] == [("low", 100), ("low", 300), ("high", 100), ("high", 300)]
    for row in rows:
        accs = [_accuracy(row["effort"], row["size"], s) for s in (0, 1, 2)]
        cell = row["student_test_accuracy"]
        assert row["seeds"] == [0, 1, 2] and cell["n"] == 3
        assert cell["mean"] == pytest.approx(sum(accs) / 3)
        half = 4.3027 * 0.01 / math.sqrt(3)  # seed offsets 0, .01, .02: std 0.01
        assert cell["ci"] == pytest.approx([cell["mean"] - half, cell["mean"] + half], abs=1e-4)
        assert row["teacher_test_accuracy"]["mean"] == pytest.approx(1.0)
        assert row["cost_per_point"] is None  # the oracle is free


def test_report_files_table_and_plots(tmp_path):
    sweep = fabricate_pipeline_sweep(tmp_path, cost_per_row=0.002, missing=4)
    res = write_report(sweep, tmp_path / "out")
    art = res["artifacts"]
    for key in ("sweep_md", "sweep_json", "sweep_runs_csv", "sweep_summary_csv", "accuracy_plot", "retention_plot"):
        assert Path(art[key]).is_file(), key
    for key in ("accuracy_plot", "retention_plot"):
        assert Path(art[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = Path(art["sweep_md"]).read_text()
    assert "11 of 12 runs finished" in md
    assert "job `4` (teacher.effort=low, recipe.size=300, seed=1): no metrics.json" in md
    # high effort, size 300: mean of .5, .51, .52 = 51.0 %
    assert "| high | 300 | 3 | 51.0 [" in md
    # cost per point: cost (380 rows x $0.002 = $0.76) / 51 points
    row = next(r for r in res["rows"] if (r["effort"], r["size"]) == ("high", 300))
    assert row["cost_usd"] == pytest.approx(0.76)
    assert row["cost_per_point"] == pytest.approx(0.76 / 51.0)
    assert row["cost_per_gain_point"] == pytest.approx(0.76 / 46.0)
    low300 = next(r for r in res["rows"] if (r["effort"], r["size"]) == ("low", 300))
    assert low300["n_runs"] == 2 and low300["seeds"] == [0, 2]
    with open(art["sweep_runs_csv"]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12 and {t["status"] for t in table} == {"ok", "missing"}
    assert res["summary"] == {"runs": 12, "finished": 11, "expected_jobs": None, "cells": 4,
                              "missing_jobs": None}  # no multirun.yaml: no grid to compare


def test_slurm_eval_sweep_reads_effort_from_the_dataset_generate_run(tmp_path):
    """An eval-stage sweep over datasets made elsewhere; submitit's folders tell how many jobs ran."""
    datasets = {}
    for effort in ("low", "medium"):
        gen = tmp_path / "gen" / effort
        _dataset(gen / "dataset", effort, 50, {"train": 50}, 1.5)
        datasets[effort] = gen / "dataset"
    sweep = tmp_path / "sw"
    for n, (effort, seed) in enumerate([("low", 0), ("low", 1), ("medium", 0), ("medium", 1)]):
        job = sweep / str(n)
        _overrides(job, [f"eval.dataset_dir={datasets[effort]}", f"seed={seed}"])
        (sweep / ".submitit" / f"7_{n}").mkdir(parents=True)
        (job / "manifest.json").write_text(json.dumps({"stage": "eval", "config": {
            **_config("medium", 9, seed, "eval"), "eval": {"dataset_dir": str(datasets[effort])}}}))
        acc = {"low": 0.2, "medium": 0.4}[effort] + 0.1 * seed
        (job / "metrics.json").write_text(json.dumps(_metrics({"test": acc}, {"test": 0.8}, {"test": 0.0},
                                                              dataset_dir=str(datasets[effort]))))
    res = write_report(sweep, tmp_path / "out")
    assert res["summary"]["expected_jobs"] == 4
    rows = res["rows"]
    assert [(r["effort"], r["size"]) for r in rows] == [("low", 50), ("medium", 50)]
    assert rows[1]["student_test_accuracy"]["mean"] == pytest.approx(0.45)
    assert rows[1]["retention_test"]["mean"] == pytest.approx(0.45 / 0.8)
    assert rows[0]["cost_per_point"] == pytest.approx(1.5 / 25.0)
    assert "student_ood_accuracy" not in rows[0]
    assert "accuracy_plot" in res["artifacts"]


def test_bad_sweep_dirs_are_named(tmp_path):
    with pytest.raises(SweepError, match="is not a directory"):
        collect(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SweepError, match="holds no job folders"):
        collect(tmp_path / "empty")
    job = tmp_path / "bad" / "0"
    job.mkdir(parents=True)
    (job / "metrics.json").write_text("{not json")
    with pytest.raises(SweepError, match=r"0/metrics.json:1: not valid JSON"):
        collect(tmp_path / "bad")


@pytest.mark.slow  # CLI subprocesses of ~10-20 s on 2 cores (make test-slow runs it)
def test_report_cli_dispatches_a_sweep_and_logs_it_to_wandb_offline(tmp_path):
    """`distill-lab report report.sweep_dir=...` with logger=wandb: files on disk and the W&B run agree."""
    import os
    import subprocess
    import sys

    from distill_lab.tracking.wandb_reader import find_runs, read_run, read_table

    sweep = fabricate_pipeline_sweep(tmp_path)
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "distill_lab.cli", "report", f"report.sweep_dir={sweep}",
                           "student=tiny", f"run_dir={out}", "logger=wandb", "logger.tags=[sweep]"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "report" and manifest["summary"]["finished"] == 12
    assert "| low | 100 | 3 | 21.0 [" in (out / "sweep.md").read_text()
    run = read_run(find_runs(out)[0])
    assert run.job_type == "report" and run.tags == ["sweep"]
    table = read_table(run, "sweep/summary")
    assert table["columns"][:3] == ["effort", "size", "n_runs"]
    assert [r[:3] for r in table["data"]] == [["low", 100, 3], ["low", 300, 3], ["high", 100, 3], ["high", 300, 3]]
    assert table["data"][3][3] == pytest.approx(0.51)
    assert any(f.startswith("media/images/sweep/accuracy_plot") for f in run.files)
    assert any(a["type"] == "report" and a["files"] == ["sweep.md"] for a in run.artifacts)


def test_retention_by_category_is_averaged_over_seeds(tmp_path):
    sweep = tmp_path / "sw"
    for seed, (r_reason, r_style) in enumerate([(0.4, 0.9), (0.5, 0.8), (0.6, 0.85)]):
        job = sweep / str(seed)
        _overrides(job, [f"seed={seed}"])
        job.mkdir(parents=True, exist_ok=True)
        (job / "manifest.json").write_text(json.dumps({"stage": "eval", "config": _config("high", 200, seed, "eval")}))
        m = _metrics({"test": 0.6}, {"test": 1.0}, {"test": 0.0})
        m["models"]["student"]["splits"]["test"]["categories"] = {"reasoning": {"accuracy": r_reason},
                                                                  "style": {"accuracy": r_style}}
        m["models"]["teacher"]["splits"]["test"]["categories"] = {"reasoning": {"accuracy": 1.0},
                                                                  "style": {"accuracy": 1.0}}
        m["models"]["base"]["splits"]["test"]["categories"] = {"reasoning": {"accuracy": 0.0},
                                                               "style": {"accuracy": 0.4}}
        m["retention"]["student"]["splits"]["test"]["categories"] = {"reasoning": {"value": r_reason},
                                                                     "style": {"value": r_style}}
        (job / "metrics.json").write_text(json.dumps(m))
    res = write_report(sweep, tmp_path / "out")
    (row,) = res["rows"]
    cell = row["categories"]["test/reasoning"]["retention"]
    assert cell["mean"] == pytest.approx(0.5) and cell["n"] == 3
    assert cell["ci"] == pytest.approx([0.5 - 4.3027 * 0.1 / math.sqrt(3), 0.5 + 4.3027 * 0.1 / math.sqrt(3)], abs=1e-4)
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "| high | 200 | test | style | 40.0 [40.0, 40.0] | 85.0 [" in md and "| 100.0 [100.0, 100.0] | 85.0 [" in md
    assert "Writing style: 85%–95%" in md


def test_seed_interval_is_clipped_to_the_range_of_an_accuracy():
    r = seed_interval([0.0, 0.0, 0.1], lo=0.0, hi=1.0)
    assert r["mean"] == pytest.approx(0.1 / 3) and r["ci"][0] == 0.0 and 0.1 < r["ci"][1] < 0.2
    r = seed_interval([0.9, 1.0, 1.0], lo=0.0, hi=1.0)
    assert r["ci"][1] == 1.0 and r["ci"][0] < 0.9
    assert seed_interval([-1.0, 1.0], lo=None)["ci"][0] < -1.0
