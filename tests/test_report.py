"""The report stage on eval runs built from known outputs: tables, retention beside the seed's
figures, example failures, plots, report.json, and what it logs (csv events, W&B offline)."""

from __future__ import annotations

import json

import pytest

from distill_lab.stages.common import run_stage
from distill_lab.stages.evaluate.config import EvalConfig
from distill_lab.stages.evaluate.prompts import EvalPrompt
from distill_lab.stages.evaluate.run import assemble_metrics, make_record, teacher_records, write_outputs
from distill_lab.stages.report.single import SEED_RETENTION, load_eval_metrics
from tests.conftest import compose_config


def _prompt(i: int, split: str) -> EvalPrompt:
    a, b = 100 + i, 200 + i
    return EvalPrompt(f"{split}{i}", "addition", "reasoning", split, [{"role": "user", "content": f"What is {a} + {b}?"}],
                      str(a + b), [f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is {a + b}."])


def write_eval_run(d, student_right: dict[str, int]):
    """An eval run dir: 4 test + 4 ood prompts; the student is right on the first ``student_right[split]``
    prompts of each split, the base on none (it never closes its thinking)."""
    ps = [_prompt(i, s) for s in ("test", "ood") for i in range(4)]
    records = teacher_records(ps)
    for i, p in enumerate(ps):
        k = i % 4
        ans = p.reference if k < student_right[p.split] else str(int(p.reference) + 10)
        records.append(make_record("student", p, "greedy", 0, f"<think>\nadding\n</think>\n\nThe answer is {ans}.",
                                   n_tokens=12, runaway=False))
        records.append(make_record("base", p, "greedy", 0, "<think>\nhmm hmm hmm", n_tokens=64, runaway=True))
    m = assemble_metrics(records, EvalConfig(dataset_dir="/data/x", adapter_dir="/adapters/y", bootstrap=200),
                         student="tiny", eval_config={"max_new_tokens": 64, "n_samples": 1})
    write_outputs(d, m, records)
    return m


@pytest.fixture
def two_runs(tmp_path):
    a, b = tmp_path / "eval_a", tmp_path / "eval_b"
    return a, b, write_eval_run(a, {"test": 3, "ood": 1}), write_eval_run(b, {"test": 4, "ood": 2})


def test_report_tables_retention_failures_and_plots(tmp_path, two_runs):
    a, b, ma, mb = two_runs
    cfg = compose_config([f"report.eval_dirs=[{a},{b}]", "report.failures_per_category=2"], stage="report")
    res = run_stage("report", cfg, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## eval_a" in md and "## eval_b" in md and "## Method" in md
    # accuracy by split: base 0 %, student 75 % (3/4), teacher 100 %, with Wilson CIs; gain and retention
    assert "| test | 4 | 0.0% [0.0, 49.0] | 75.0% [30.1, 95.4] | 100.0% [51.0, 100.0] | +75.0 pt" in md
    assert "| ood | 4 | 0.0% [0.0, 49.0] | 25.0%" in md
    # retention per category with the seed's figure beside it
    assert "| reasoning | test | 4 | 75.0% | 100.0% | 75.0% [" in md and "Novel reasoning: 40%–60%" in md
    # the base never closed its think block: format compliance 0, runaway 100 % (the per-output metrics
    # of artifacts.metrics.SAMPLE_METRICS follow the fixed columns, in their order)
    assert "| base | test | @1 0.0% | 0.0% | 0.0% | 0.0% | 100.0% | 64 | 11 | 100.0% | 100.0% | 0.13 |" in md
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    ra, rb = rep["runs"]
    assert ra["accuracy"]["test"]["student"]["accuracy"] == ma.accuracy("student", "test") == 0.75
    assert rb["retention"]["ood"]["all"]["value"] == pytest.approx(0.5)
    assert ra["gain"]["test"]["all"]["value"] == pytest.approx(0.75)
    assert rep["seed_retention"]["reasoning"] == {"name": "Novel reasoning", "low": 0.4, "high": 0.6}
    # failures: student wrong answers, with the teacher's and the base's answer to the same prompt
    fa = ra["failures"]
    assert [(f["split"], f["prompt"]) for f in fa] == [("test", "What is 103 + 203?"), ("ood", "What is 101 + 201?"),
                                                      ("ood", "What is 102 + 202?")]
    assert fa[0]["extracted"] == "316" and fa[0]["reference"] == "306"
    assert fa[0]["teacher_answer"] == "The answer is 306." and fa[0]["base_output"] == "<think>\nhmm hmm hmm"
    assert "What is 103 + 203?" in md and "teacher (correct): The answer is 306." in md
    # plots: one accuracy and one retention PNG per run
    plots = [v for k, v in res.artifacts.items() if k.startswith("plot_")]
    assert len(plots) == 4
    for p in plots:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert res.summary["accuracy"]["eval_b"]["test"]["student"] == 1.0


def test_report_logs_tables_and_images_to_the_csv_logger(tmp_path, two_runs):
    a, _, _, _ = two_runs
    cfg = compose_config([f"report.eval_dirs=[{a}]", "logger=wandb", "logger.name=csv"], stage="report")
    run_stage("report", cfg, tmp_path / "rep")
    events = [json.loads(x) for x in (tmp_path / "rep" / "logs" / "events.jsonl").read_text().splitlines()]
    tables = {e["key"]: e for e in events if e["kind"] == "table"}
    acc = tables["report/eval_a/accuracy"]
    assert acc["columns"][:4] == ["run", "split", "model", "accuracy"]
    assert ["eval_a", "test", "student", 0.75] == acc["rows"][[r[:3] for r in acc["rows"]].index(["eval_a", "test", "student"])][:4]
    assert any(r[2] == "reasoning" for r in tables["report/eval_a/retention"]["rows"])
    assert len(tables["report/eval_a/failures"]["rows"]) == 1 + 3  # test 1, ood 3 (default cap 3)
    assert {e["key"] for e in events if e["kind"] == "image"} == {"report/eval_a/accuracy_eval_a",
                                                                  "report/eval_a/retention_eval_a"}
    assert any(e["kind"] == "artifact" and e["name"] == "report" for e in events)


def test_load_eval_metrics_errors(tmp_path, two_runs):
    a, _, ma, _ = two_runs
    assert load_eval_metrics(a).models.keys() == ma.models.keys()
    assert load_eval_metrics(a / "metrics.json").prompts == {"test": 4, "ood": 4}
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text('{"schema_version": 1,\n "models": ')
    with pytest.raises(ValueError, match=r"bad/metrics.json:2: not valid JSON"):
        load_eval_metrics(bad)
    (bad / "metrics.json").write_text('{"accuracy": 0.5}')
    with pytest.raises(ValueError, match="not a distill_lab eval metrics file"):
        load_eval_metrics(bad)
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        load_eval_metrics(tmp_path / "nowhere")


def test_seed_figures_cover_every_category():
    from distill_lab.tasks.base import CATEGORIES

    assert set(SEED_RETENTION) == set(CATEGORIES)
    assert all(0 < lo < hi <= 1 for _, lo, hi in SEED_RETENTION.values())


def test_report_to_wandb_offline_tables_and_images(tmp_path, two_runs, monkeypatch):
    from distill_lab.tracking.wandb_reader import find_runs, read_run, read_table

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    a, _, _, _ = two_runs
    cfg = compose_config([f"report.eval_dirs=[{a}]", "logger=wandb"], stage="report")
    run_stage("report", cfg, tmp_path / "rep")
    (path,) = find_runs(tmp_path / "rep")
    run = read_run(path)
    assert run.job_type == "report"
    acc = read_table(run, "report/eval_a/accuracy")
    row = next(r for r in acc["data"] if r[1:3] == ["test", "student"])
    assert row[3] == 0.75 and row[6] == 4
    ret = read_table(run, "report/eval_a/retention")
    assert any(r[1:3] == ["test", "reasoning"] and r[3] == pytest.approx(0.75) for r in ret["data"])
    assert any(f.startswith("media/images/report/eval_a/retention_eval_a") for f in run.files)
    assert {"name": "report", "type": "report", "files": ["report.md"]} in run.artifacts


def test_single_report_intervals_are_never_zero_width_and_stay_in_range(tmp_path):
    d = tmp_path / "eval_all_right"
    m = write_eval_run(d, {"test": 4, "ood": 4})  # student and teacher right everywhere, base never
    assert m.retention_stat("student", "test")["ci"] == [1.0, 1.0]  # the eval's percentile bootstrap
    cfg = compose_config([f"report.eval_dirs=[{d}]", "report.plots=false"], stage="report")
    run_stage("report", cfg, tmp_path / "rep")
    run = json.loads((tmp_path / "rep" / "report.json").read_text())["runs"][0]
    ret = run["retention"]["test"]["all"]
    assert ret["value"] == 1.0 and ret["ci"][0] < 1.0 and ret["ci"][1] == 1.0  # clipped: 1 / teacher accuracy
    assert ret["ci_method"].startswith("wilson ratio")
    gain = run["gain"]["test"]["reasoning"]
    assert gain["value"] == 1.0 and gain["ci"][0] < 0.8 and gain["ci"][1] == 1.0
    assert gain["ci_method"].startswith("newcombe")
