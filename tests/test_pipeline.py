"""The whole loop on the tiny student: generate -> train -> eval -> report, through the CLI.

One-digit additions (train/test) and two-digit ones (ood) with the oracle's one-line traces: the
random-init tiny student, fully fine-tuned, learns the answer format and some sums; its base knows
neither. The assertions recompute what the report says from the artifacts themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.stats import wilson_interval

TINY_ADDITION = [
    "student=tiny", "student.adapter=full", "hardware=cpu_fp32", "teacher.effort=low",
    "recipe.families=[{name: addition, params: {digits: 1, ood_digits: 2}}]",
    "recipe.size=80", "recipe.test_size=20", "recipe.ood_size=10",
    "train.max_steps=300", "train.batch_size=16", "optimizer.lr=3e-3", "optimizer.warmup_steps=10",
    "eval.max_new_tokens=40", "eval.allow_truncation=true",
]


pytestmark = pytest.mark.slow  # a 300-step full fine-tune end to end (~40 s on 2 cores)


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    exe = Path(sys.executable).with_name("distill-lab")
    out = subprocess.run([str(exe), "pipeline", *TINY_ADDITION, f"run_dir={run_dir}"], capture_output=True,
                         text=True, timeout=1500, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"report at {run_dir / 'report' / 'report.md'}" in out.stdout
    return run_dir


def test_every_stage_left_its_artifact_and_manifest(pipeline_run):
    for stage in ("generate", "train", "eval", "report"):
        m = json.loads((pipeline_run / stage / "manifest.json").read_text())
        assert m["stage"] == stage
    train_m = json.loads((pipeline_run / "train" / "manifest.json").read_text())
    # the pipeline wired the artifact pointers itself
    assert train_m["config"]["train"]["dataset_dir"] == str(pipeline_run / "generate" / "dataset")
    eval_m = json.loads((pipeline_run / "eval" / "manifest.json").read_text())
    assert eval_m["config"]["eval"]["adapter_dir"] == train_m["artifacts"]["adapter"]
    rows = load_rows(pipeline_run / "generate" / "dataset")
    assert {r["split"] for r in rows} == {"train", "test", "ood"}
    assert sum(r["split"] == "train" for r in rows) == 80
    assert all(r["verified"] for r in rows)
    assert train_m["summary"]["final_loss"] < 0.5


def test_distilled_tiny_student_beats_its_base(pipeline_run):
    metrics = json.loads((pipeline_run / "eval" / "metrics.json").read_text())
    samples = [json.loads(line) for line in (pipeline_run / "eval" / "samples.jsonl").read_text().splitlines()]
    for model in ("base", "student"):
        mine = [s for s in samples if s["model"] == model and s["split"] == "test" and s["kind"] == "greedy"]
        assert len(mine) == 20
        correct = sum(s["correct"] for s in mine)
        # recompute the reported accuracy and its Wilson interval from the per-sample outputs
        block = metrics["models"][model]["splits"]["test"]
        assert block["correct"] == correct and block["accuracy"] == pytest.approx(correct / 20)
        assert block["accuracy_ci"] == pytest.approx(list(wilson_interval(correct, 20, 0.95)))
        # and check each verdict against the reference ourselves
        for s in mine:
            assert s["correct"] == (s["extracted"] == s["reference"])
    student = metrics["models"]["student"]["splits"]["test"]["accuracy"]
    base = metrics["models"]["base"]["splits"]["test"]["accuracy"]
    assert student > base, f"distilled {student:.2f} <= base {base:.2f}"
    assert metrics["models"]["teacher"]["splits"]["test"]["accuracy"] == 1.0


def test_report_shows_the_measured_table(pipeline_run):
    report = (pipeline_run / "report" / "report.md").read_text()
    metrics = json.loads((pipeline_run / "eval" / "metrics.json").read_text())
    acc = metrics["models"]["student"]["splits"]["test"]["accuracy"]
    assert f"{100 * acc:.1f}%" in report
    assert "| test |" in report and "| ood |" in report
