"""The single-run report shows the training dose per family of the train run behind the evaluated adapter
(the train summary's dose_per_family), found beside adapter_dir or in the pipeline job's train/ folder."""

from __future__ import annotations

import json

from distill_lab.stages.report.single import build_report
from tests.test_report import write_eval_run

DOSE = {"addition": {"rows": 30, "supervised_tokens": 900}, "edge_checks": {"rows": 10, "supervised_tokens": 100}}


def _train_run(d):
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"stage": "train", "summary": {"dose_per_family": DOSE}}))
    return d


def _eval_run(d, adapter_dir):
    write_eval_run(d, {"test": 3, "ood": 1})
    m = json.loads((d / "metrics.json").read_text())
    m["adapter_dir"] = str(adapter_dir)
    (d / "metrics.json").write_text(json.dumps(m))
    return d


def test_the_dose_of_the_adapters_train_run_and_of_a_pipeline_job(tmp_path):
    train = _train_run(tmp_path / "runs" / "train_1")
    alone = _eval_run(tmp_path / "runs" / "eval_1", train / "adapter")
    job = tmp_path / "job"
    _train_run(job / "train")
    piped = _eval_run(job / "eval", "outputs/elsewhere/adapter")  # a path from another working directory
    rep = build_report([str(alone), str(piped)], tmp_path / "out", plots=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert [r["train_dose"]["train_run"] for r in rep["runs"]] == [str(train), str(job / "train")]
    assert rep["runs"][0]["train_dose"]["dose"]["addition"] == {"rows": 30.0, "supervised_tokens": 900.0}
    assert f"### Training dose per family (train run `{train}`)" in md
    assert f"### Training dose per family (train run `{job / 'train'}`)" in md
    assert md.count("| addition | 30 | 900 | 90.0 |") == 2 and md.count("| edge_checks | 10 | 100 | 10.0 |") == 2
    # before the example failures of its run
    assert md.index("### Training dose per family") < md.index("### Example failures")


def test_a_train_run_that_cannot_be_found_is_said(tmp_path):
    gone = _eval_run(tmp_path / "runs" / "eval_1", tmp_path / "deleted" / "adapter")
    rep = build_report([str(gone)], tmp_path / "out", plots=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert rep["runs"][0]["train_dose"] is None
    assert f"the train run of adapter `{tmp_path / 'deleted' / 'adapter'}` was not found" in md
    assert "### Training dose per family" not in md
