"""The sweep report's per-family figures (accuracy, content, format apart) and probe-control contrasts."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from distill_lab.stages.report.families import run_contrasts, run_families
from distill_lab.stages.report.sweep import write_report


def _block(acc: float, score: float | None = None, parsed: float = 1.0) -> dict:
    return {"n": 20, "accuracy": acc, "score": acc if score is None else score,
            "format": {"answer_parsed": parsed}, "accuracy_ci": [max(0.0, acc - 0.2), min(1.0, acc + 0.2)]}


def seed_job(sweep: Path, seed: int, metrics: dict, *, manifest: dict | None = None, name: str | None = None,
             overrides: str = "") -> Path:
    """One job of a fabricated sweep: ``.hydra/overrides.yaml`` (``seed=<seed>`` then ``overrides``),
    ``manifest.json`` (an eval run's, unless given) and ``metrics.json``."""
    job = sweep / (name or str(seed))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n{overrides}")
    manifest = manifest or {"stage": "eval", "config": {"stage": "eval", "seed": seed}}
    (job / "manifest.json").write_text(json.dumps(manifest))
    (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def _metrics(seed: int) -> dict:
    taught, untaught = 0.6 + 0.1 * seed, 0.05
    fams = {"capital_facts": _block(taught), "capital_facts_untaught": _block(untaught),
            "json_fields": _block(0.2, score=0.9, parsed=0.25)}
    split = {**_block(0.5), "families": fams}
    teacher = {**_block(1.0), "families": {f: _block(1.0) for f in fams}}
    return {"schema_version": 1, "models": {
        "student": {"overall": _block(0.5), "splits": {"test": split}},
        "teacher": {"overall": _block(1.0), "splits": {"test": teacher}}}}


def test_run_families_and_contrasts_read_the_family_blocks():
    fams = run_families(_metrics(0)["models"])
    assert fams["test/json_fields"]["student_accuracy"] == 0.2
    assert fams["test/json_fields"]["student_score"] == 0.9  # content right, format mostly not
    assert fams["test/json_fields"]["student_format"] == 0.25
    con = run_contrasts(fams)
    assert con["taught - untaught facts"] == {"student": pytest.approx(0.55), "teacher": 0.0}
    assert "forward - reverse (ood)" not in con  # its sides were not measured


def test_sweep_report_averages_contrasts_over_seeds_with_an_interval(tmp_path):
    sweep = tmp_path / "sw"
    for seed in (0, 1, 2):
        seed_job(sweep, seed, _metrics(seed), manifest={"stage": "eval", "config": {
            "stage": "eval", "seed": seed, "student": {"name": "smollm2_135m"}}})
    res = write_report(sweep, tmp_path / "out")
    (row,) = res["rows"]
    cell = row["contrasts"]["taught - untaught facts"]["student"]
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert cell["mean"] == pytest.approx(0.65) and cell["ci"] == pytest.approx([0.65 - half, 0.65 + half], abs=1e-4)
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "| test | json_fields | 20.0 [20.0, 20.0] | 90.0 [90.0, 90.0] | 25.0 [25.0, 25.0] |" in md
    assert "| taught - untaught facts | 65.0 [" in md
    with open(res["artifacts"]["sweep_runs_csv"]) as f:
        table = list(csv.DictReader(f))
    assert [t["student"] for t in table] == ["smollm2_135m"] * 3 and [t["seed"] for t in table] == ["0", "1", "2"]
    assert float(table[1]["contrast:taught - untaught facts:student"]) == pytest.approx(0.65)
    assert table[0]["student_test_accuracy_ci"] == "[0.3000, 0.7000]"  # the run's own bootstrap interval


def test_effort_sweeps_get_an_accuracy_per_training_token_plot(tmp_path):
    from .test_sweep import fabricate_pipeline_sweep

    sweep = fabricate_pipeline_sweep(tmp_path)
    for m in sweep.glob("*/train/manifest.json"):
        d = json.loads(m.read_text())
        effort = d["config"]["teacher"]["effort"]
        d["summary"]["supervised_tokens"] = {"low": 1000, "high": 3000}[effort] * (1 + d["config"]["seed"])
        m.write_text(json.dumps(d))
    res = write_report(sweep, tmp_path / "out")
    png = Path(res["artifacts"]["accuracy_tokens_plot"])
    assert png.name == "accuracy_vs_tokens.png" and png.read_bytes()[:4] == b"\x89PNG"
    high = next(r for r in res["rows"] if r["effort"] == "high")
    assert high["train_tokens"] == pytest.approx(3000 * 2)  # mean over seeds 0, 1, 2
    with open(res["artifacts"]["sweep_summary_csv"]) as f:
        assert "train_tokens" in next(csv.reader(f))


def test_category_table_has_retention_on_the_graded_score(tmp_path):
    sweep = tmp_path / "sw"
    for seed in (0, 1):
        m = _metrics(seed)
        m["models"]["student"]["splits"]["test"]["categories"] = {"style": _block(0.3, score=0.8)}
        m["models"]["teacher"]["splits"]["test"]["categories"] = {"style": _block(1.0)}
        m["retention"] = {"student": {"splits": {"test": {"all": {"value": 0.5}, "categories": {"style": {"value": 0.3}}}}}}
        m["score_retention"] = {"student": {"splits": {"test": {"categories": {"style": {"value": 0.8 + 0.4 * seed}}}}}}
        seed_job(sweep, seed, m)
    res = write_report(sweep, tmp_path / "out")
    cell = res["rows"][0]["categories"]["test/style"]
    assert cell["retention"]["mean"] == pytest.approx(0.3)
    assert cell["score_retention"]["mean"] == pytest.approx(1.0) and cell["score_retention"]["ci"][1] > 1.0  # not clipped
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "| test | style | – | 30.0 [30.0, 30.0] | 100.0 [100.0, 100.0] | 30.0 [30.0, 30.0] | 100.0 [" in md  # no base


def test_a_key_set_in_a_later_sitting_makes_its_own_cell(tmp_path):
    """Seeds 0-2 at the defaults, then seed 3 with train.max_steps=200 into the same sweep: two cells."""
    sweep = tmp_path / "sw"
    for seed in (0, 1, 2, 3):
        seed_job(sweep, seed, _metrics(seed), name=f"seed={seed}" if seed < 3 else "seed=3,train.max_steps=200",
                 overrides="- train.max_steps=200\n" if seed == 3 else "")
    rows = write_report(sweep, tmp_path / "out")["rows"]
    assert sorted(((r["train.max_steps"], r["n_runs"]) for r in rows), key=str) == [("200", 1), (None, 3)]


def test_a_cell_with_several_categories_gets_a_retention_by_category_chart(tmp_path, monkeypatch):
    import distill_lab.stages.report.sweep_plots as sweep_plots

    sweep = tmp_path / "sw"
    for seed in (0, 1, 2):
        m = _metrics(seed)
        cats = {"style": 0.9, "knowledge": 0.1 * seed}
        m["models"]["student"]["splits"]["test"]["categories"] = {c: _block(v) for c, v in cats.items()}
        m["models"]["teacher"]["splits"]["test"]["categories"] = {c: _block(1.0) for c in cats}
        m["retention"] = {"student": {"splits": {"test": {"all": {"value": 0.5}, "categories": {
            c: {"value": v} for c, v in cats.items()}}}}}
        seed_job(sweep, seed, m)
    drawn = []
    real = sweep_plots.retention_by_category_plot

    def spy(categories, splits, stat, title, path):
        drawn.append({(s, c): stat(s, c) for s in splits for c in categories})
        return real(categories, splits, stat, title, path)

    monkeypatch.setattr(sweep_plots, "retention_by_category_plot", spy)
    res = write_report(sweep, tmp_path / "out")
    (png,) = res["artifacts"]["category_plots"]
    assert Path(png).name == "retention_by_category.png" and Path(png).read_bytes()[:4] == b"\x89PNG"
    (values,) = drawn
    assert values[("test", "style")] == (pytest.approx(0.9), [pytest.approx(0.9), pytest.approx(0.9)])
    mean, ci = values[("test", "knowledge")]  # 0, .1, .2: sd .1, t(2) 4.303, clipped at 0
    assert mean == pytest.approx(0.1) and ci[0] == 0.0 and ci[1] == pytest.approx(0.1 + 4.303 * 0.1 / 3 ** 0.5, abs=1e-3)


def test_controls_stay_out_of_the_sweeps_category_figures_and_contrasts():
    """The eval's metrics leave a probe's control out of category blocks; the sweep's figures, computed from
    the samples, must too: an edge-case category figure is the announced probe alone, not probe + control."""
    import numpy as np

    from distill_lab.stages.report.samples import answers
    from distill_lab.stages.report.sweep_stats import _figures

    def rec(pid, task, correct):
        return {"model": "student", "split": "test", "prompt_id": pid, "kind": "greedy", "sample_index": 0,
                "task": task, "family": task, "category": "edge_case", "correct": correct, "score": None}

    recs = [rec(f"a{i}", "edge_checks", True) for i in range(4)] + \
           [rec(f"u{i}", "edge_checks_unannounced", False) for i in range(4)]
    ans = answers(recs)
    assert {ans[("student", "test", f"a{i}")][0] for i in range(4)} == {"edge_case"}
    assert {ans[("student", "test", f"u{i}")][0] for i in range(4)} == {""}
    cat = _figures([ans, ans], "test", "edge_case", 0.95)["student"]
    split = _figures([ans, ans], "test", None, 0.95)["student"]
    assert cat["mean"] == 1.0 and np.isclose(split["mean"], 0.5)  # the control counts in its split only
