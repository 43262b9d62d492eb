"""The sweep report draws a mixed-effort arm as its own line beside the pure efforts.

The generate stage writes the mix's label (``mix(low:0.5,high:0.5)``) as the dataset's effort; the sweep
report reads efforts from there, so the mix becomes its own cell in the tables and its own line in the
plots, after the pure efforts, without touching the pure cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_lab.stages.report.sweep import aggregate, collect, write_report
from tests.test_sweep import _config, _dataset, _metrics, _overrides

LABEL = "mix(low:0.5,high:0.5)"
ACC = {"low": 0.6, "high": 0.3, LABEL: 0.5}


def _sweep(root: Path) -> Path:
    sweep = root / "multirun"
    n = 0
    arms = [("low", []), ("high", []), (LABEL, ["recipe.effort_mix=low@0.5+high@0.5"])]
    for label, extra in arms:
        for size in (50, 100):
            for seed in (0, 1):
                job = sweep / str(n)
                effort = "high" if label == LABEL else label
                _overrides(job, ["stage=pipeline", f"teacher.effort={effort}", f"recipe.size={size}", f"seed={seed}",
                                 *extra])
                _dataset(job / "generate" / "dataset", label, size, {"train": size, "test": 40, "ood": 40}, 0.0)
                acc = ACC[label] + 0.01 * seed
                (job / "eval").mkdir(parents=True)
                (job / "eval" / "metrics.json").write_text(json.dumps(_metrics(
                    {"test": acc, "ood": acc / 2}, {"test": 1.0, "ood": 1.0}, {"test": 0.05, "ood": 0.0})))
                (job / "manifest.json").write_text(json.dumps({"stage": "pipeline", "config": _config(effort, size, seed),
                                                               "summary": {}}))
                n += 1
    return sweep


def test_the_mix_is_its_own_cell_and_line(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path)
    runs = collect(sweep)
    assert sorted({r.effort for r in runs}) == sorted(["low", "high", LABEL])
    rows = aggregate(runs)
    assert [r["effort"] for r in rows] == ["low", "low", "high", "high", LABEL, LABEL]  # pure efforts first
    for r in rows:
        assert r["student_test_accuracy"]["mean"] == pytest.approx(ACC[r["effort"]] + 0.005)
    labels: list[str] = []
    from matplotlib.axes import Axes

    real = Axes.errorbar

    def spy(self, *a, **kw):
        labels.append(kw.get("label"))
        return real(self, *a, **kw)

    monkeypatch.setattr(Axes, "errorbar", spy)
    res = write_report(sweep, tmp_path / "out")
    assert f"effort={LABEL}" in labels and "effort=low" in labels and "effort=high" in labels
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert f"| {LABEL} | 100 |" in md


def test_the_mix_is_contrasted_with_each_pure_effort_paired_on_size_and_seed(tmp_path):
    from distill_lab.stages.report.contrasts import sweep_contrasts
    from distill_lab.stages.report.sweep_runs import swept_keys

    sweep = _sweep(tmp_path)
    right = {"low": 24, "high": 12, LABEL: 20}  # of 40 test prompts, the same in every seed and size
    for r in collect(sweep):
        (Path(r.path) / "eval" / "samples.jsonl").write_text("".join(json.dumps(
            {"model": "student", "split": "test", "prompt_id": f"p{i}", "category": "reasoning", "kind": "greedy",
             "correct": i < right[r.effort]}) + "\n" for i in range(40)))
    runs = collect(sweep)
    rows = {r["contrast"]: r for r in sweep_contrasts(runs, swept_keys(runs)) if r["kind"] == "effort mix"}
    assert set(rows) == {f"{LABEL} - low", f"{LABEL} - high"}
    assert rows[f"{LABEL} - low"]["mean"] == pytest.approx((20 - 24) / 40)
    assert rows[f"{LABEL} - high"]["mean"] == pytest.approx((20 - 12) / 40)
    assert rows[f"{LABEL} - high"]["n_pairs"] == 4 and rows[f"{LABEL} - high"]["n_seeds"] == 2  # 2 sizes x 2 seeds
