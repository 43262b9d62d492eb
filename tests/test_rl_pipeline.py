"""``distill-lab pipeline rl.enabled=true`` on the tiny student through the CLI: generate -> train -> rl
-> eval (SFT and SFT+RL) -> report, wired through the artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # five stages through the CLI (~1-2 min on 2 cores)


def test_pipeline_with_rl_evaluates_sft_and_sft_rl_side_by_side(tmp_path):
    run_dir = tmp_path / "run"
    exe = Path(sys.executable).with_name("distill-lab")
    out = subprocess.run([str(exe), "pipeline", "debug=fast", "hardware=cpu_fp32", "rl.enabled=true", "rl.steps=2",
                          "rl.max_completion_tokens=128", f"run_dir={run_dir}"], capture_output=True, text=True,
                         timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    man = {s: json.loads((run_dir / s / "manifest.json").read_text())
           for s in ("generate", "train", "rl", "eval", "eval_rl", "report")}
    assert man["rl"]["config"]["rl"]["adapter_dir"] == man["train"]["artifacts"]["adapter"]
    assert man["rl"]["config"]["rl"]["dataset_dir"] == str(run_dir / "generate" / "dataset")
    assert man["eval"]["config"]["eval"]["adapter_dir"] == man["train"]["artifacts"]["adapter"]
    assert man["eval_rl"]["config"]["eval"]["adapter_dir"] == man["rl"]["artifacts"]["adapter"]
    assert man["rl"]["summary"]["steps"] == 2
    report = json.loads((run_dir / "report" / "report.json").read_text())
    assert [(r["label"], r["adapter_dir"]) for r in report["runs"]] == [
        ("eval", man["train"]["artifacts"]["adapter"]), ("eval_rl", man["rl"]["artifacts"]["adapter"])]
    for r in report["runs"]:  # each section has the base beside its student, on the same prompts
        assert {"base", "student", "teacher"} <= set(r["accuracy"]["test"])
    md = (run_dir / "report" / "report.md").read_text()
    assert "## eval\n" in md and "## eval_rl\n" in md
    top = json.loads((run_dir / "manifest.json").read_text())
    assert top["summary"]["rl"]["steps"] == 2 and "eval_rl" in top["summary"]

    # SFT, SFT+RL and base side by side in the single report, and the run read as a sweep (its RL arm), both
    # from the samples: the figures equal the two evals' own
    ev, ev_rl = (json.loads((run_dir / s / "metrics.json").read_text()) for s in ("eval", "eval_rl"))
    (side,) = report["sft_vs_rl"]
    top = next(r for r in side["rows"] if r["split"] == "test" and r["category"] == "all")
    assert top["student"]["mean"] == pytest.approx(ev["models"]["student"]["splits"]["test"]["accuracy"])
    assert top["student_rl"]["mean"] == pytest.approx(ev_rl["models"]["student"]["splits"]["test"]["accuracy"])
    assert top["base"]["mean"] == pytest.approx(ev["models"]["base"]["splits"]["test"]["accuracy"])
    assert "## SFT, SFT+RL and base side by side" in md
    from distill_lab.stages.report.sweep import write_report

    res = write_report(tmp_path, tmp_path / "sweep_report", vote_over="stage")
    (cell,) = res["rows"]
    assert cell["student_rl_test_accuracy"]["mean"] == pytest.approx(top["student_rl"]["mean"])
    assert any(c["kind"] == "rl" for c in json.loads((tmp_path / "sweep_report" / "sweep.json").read_text())["contrasts"])
