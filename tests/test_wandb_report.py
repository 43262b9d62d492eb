"""A W&B Report from a sweep (report/wandb_report.py, wandb-workspaces): built from a fixture sweep whose
runs logged offline with the project's own logger; the spec's panels, filters and keys asserted; a missing
key named; publishing checked over real HTTP against a local stand-in of W&B's GraphQL endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.report import run as report_stage
from distill_lab.stages.report.sweep import run_report
from distill_lab.stages.report.wandb_report import (
    REPORT_FILE,
    Need,
    WandbReportError,
    check_keys,
    logged_runs,
    panel_keys,
    publish_file,
)
from distill_lab.tracking.loggers import open_run
from distill_lab.tracking.wandb_reader import find_runs, read_run, read_table

from . import sweep_fixture as fx
from .conftest import compose_config
from .fake_api.wandb_server import FakeWandb, start

GROUP = "effort-fixture"
KEY = "local-test-key-" + "0123456789abcdef" * 2  # a dummy key (47 characters; W&B wants 40+)
PRICE = "claude-opus-4-7"


def _log_sweep_runs(sweep: Path) -> None:
    """Each job's eval and train stages log to W&B offline in the sweep's group, as a pipeline would."""
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        ov = (job / ".hydra" / "overrides.yaml").read_text().split()
        effort = next(o.split("=")[1] for o in ov if o.startswith("teacher.effort"))
        size = int(next(o.split("=")[1] for o in ov if o.startswith("recipe.size")))
        cfg = compose_config(["student=tiny", "logger=wandb", f"logger.group={GROUP}", f"teacher.effort={effort}",
                              f"recipe.size={size}"], stage="eval")
        acc = fx.ACCURACY[(effort, size)]
        with open_run(cfg, "eval", job / "eval") as wl:
            wl.log_metrics({"eval/student/test/accuracy": acc, "eval/student/ood/accuracy": acc / 2,
                            "eval/retention/student/test": acc})
        with open_run(cfg, "train", job / "train") as wl:
            for step in range(1, 4):
                wl.log_metrics({"train/loss": 1.0 / step, "train/lr": 1e-3}, step=step)


def _report_cfg(sweep: Path, run_dir: Path, *extra: str):
    return compose_config(["student=tiny", "logger=wandb", f"report.sweep_dir={sweep}", "report.wandb_report=true",
                           f"report.projected_price_model={PRICE}", f"run_dir={run_dir}",
                           "report.question=Does a more detailed trace teach more per dollar?", *extra],
                          stage="report")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture sweep, its offline W&B runs, and one report built from them (not published)."""
    root = tmp_path_factory.mktemp("wandb_report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.delenv("DISTILL_LAB_GROUP", raising=False)
        sweep = fx.fabricate(root)
        _log_sweep_runs(sweep)
        run_dir = root / "report"
        import io
        from contextlib import redirect_stdout

        buf = io.StringIO()
        with redirect_stdout(buf):
            result = run_report(_report_cfg(sweep, run_dir), run_dir)
    spec = json.loads((run_dir / REPORT_FILE).read_text())
    return {"sweep": sweep, "run_dir": run_dir, "spec": spec, "stdout": buf.getvalue(), "result": result}


def _grids(spec):
    return [b for b in spec["viewspec"]["spec"]["blocks"] if b["type"] == "panel-grid"]


def _text(spec):
    def words(b):
        return "".join(c.get("text", "") for c in b.get("children", []) if isinstance(c, dict))
    return [(b["type"], words(b)) for b in spec["viewspec"]["spec"]["blocks"] if b["type"] in ("heading", "paragraph")]


def test_spec_has_the_text_panels_filters_and_only_logged_keys(built):
    spec, run_dir = built["spec"], built["run_dir"]
    assert spec["format"].startswith("distill_lab W&B report spec") and spec["group"] == GROUP
    assert spec["viewspec"]["displayName"] == "Sweep fixture"
    assert spec["viewspec"]["project"]["name"] == "distill_lab"
    text = _text(spec)
    assert ("heading", "Question") in text and ("paragraph", "Does a more detailed trace teach more per dollar?") in text
    method = next(t for kind, t in text if "finished runs" in t)
    assert "4 finished runs of 4" in method and "teacher.effort ∈ {high, low}" in method and "recipe.size ∈ {2, 4}" in method
    assert any(f"PROJECTED at {PRICE} list prices" in t for _, t in text)
    # every grid's run set is filtered to the sweep's group and one job type
    filters = []
    for g in _grids(spec):
        for rs in g["metadata"]["runSets"]:
            f = {(c["key"]["name"], c["value"]) for c in rs["filters"]["filters"]}
            assert ("group", GROUP) in f
            filters.append(dict(f)["jobType"])
    assert set(filters) == {"report", "eval", "train"}
    panels = [p for g in _grids(spec) for p in g["metadata"]["panelBankSectionConfig"]["panels"]]
    kinds = [p["viewType"] for p in panels]
    assert kinds.count("Vega2") == 3 * 2 + 1 + 4 and "Scatter Plot" in kinds and "Run History Line Plot" in kinds
    charts = {(p["config"]["panelDefId"], json.dumps(p["config"]["fieldSettings"], sort_keys=True)) for p in panels
              if p["viewType"] == "Vega2"}
    assert ("wandb/line/v0", json.dumps({"stroke": "effort", "x": "size", "y": "student_test_accuracy"},
                                        sort_keys=True)) in charts
    assert ("wandb/scatter/v0", json.dumps({"x": "teacher_usd", "y": "student_test_accuracy"}, sort_keys=True)) in charts
    assert ("wandb/bar/v0", json.dumps({"label": "label", "value": "retention"}, sort_keys=True)) in charts
    assert ("wandb/line/v0", json.dumps({"stroke": "frontier", "x": "teacher_usd", "y": "student_test_accuracy"},
                                        sort_keys=True)) in charts
    # the frontier's line is drawn from its members only, cheapest first (the fixture's known frontier)
    (rr,) = [read_run(f) for f in find_runs(built["run_dir"])]
    front = read_table(rr, "sweep/frontier_usd")
    assert [row[1] for row in front["data"]] == ["low, 2", "low, 4", "high, 4"]
    assert [row[4] for row in front["data"]] == [False, True, False]
    keys = set(panel_keys(spec)) - {"_step"}  # the x axis of the training curves: W&B's step
    assert keys == {"sweep/cells", "sweep/categories", "sweep/frontier", "sweep/frontier_usd", "sweep/frontier_tokens",
                    "sweep/runs", "train/loss",
                    "eval/student/test/accuracy", "eval/student/ood/accuracy", "recipe.size"}
    # ... and each of them was logged: the report run's tables and the sweep's eval/train runs, on disk
    logged = logged_runs([built["sweep"], run_dir])
    have = set().union(*(r.summary | r.history | r.config for r in logged if r.group == GROUP))
    assert {k for k in keys if k not in have and f"{k}/_type" not in have} == set()
    (report_run,) = [read_run(f) for f in find_runs(run_dir)]
    assert report_run.group == GROUP and report_run.job_type == "report"
    assert any(f.startswith("media/images/sweep/frontier_teacher_usd_plot") for f in report_run.files)
    assert "report.publish_file=" in built["stdout"] and str(run_dir / REPORT_FILE) in built["stdout"]
    assert built["result"].artifacts["wandb_report_spec"] == str(run_dir / REPORT_FILE)
    assert "wandb_report_url" not in built["result"].artifacts


def test_a_key_no_run_logged_is_named(built):
    logged = logged_runs([built["sweep"], built["run_dir"]])
    no_train = [r for r in logged if r.job_type != "train"]
    with pytest.raises(WandbReportError, match=r"no 'train' run of W&B group 'effort-fixture'"):
        check_keys([Need("history", "train", "train/loss")], no_train, GROUP)
    with pytest.raises(WandbReportError, match=r"history key 'train/grad_norm' was not logged by any 'train' run"):
        check_keys([Need("history", "train", "train/grad_norm")], logged, GROUP)
    with pytest.raises(WandbReportError, match=r"table 'sweep/cells' has no column 'student_test_f1'"):
        check_keys([Need("table", "report", "sweep/cells", ("size", "student_test_f1"))], logged, GROUP)
    with pytest.raises(WandbReportError, match=r"summary key 'eval/student/test/accuracy'.*group 'other'"):
        check_keys([Need("summary", "eval", "eval/student/test/accuracy")], logged, "other")
    check_keys([Need("config", "eval", "teacher.effort"), Need("history", "train", "train/loss")], logged, GROUP)


@pytest.fixture
def stand_in(monkeypatch):
    fake = FakeWandb(projects={"distill_lab": "internal-7"})  # the project the sweep's runs were logged to
    server = start(fake)
    monkeypatch.setenv("WANDB_BASE_URL", server.url)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield fake, server
    server.stop()


def test_publish_a_saved_spec_over_http(built, stand_in, tmp_path, capsys):
    fake, server = stand_in
    spec_file = built["run_dir"] / REPORT_FILE
    cfg = compose_config(["student=tiny", f"report.publish_file={spec_file}", f"run_dir={tmp_path}"], stage="report")
    result = report_stage.run(cfg, tmp_path)
    ops = fake.operations()
    assert ops.count("upsertView") == 1 and {"Viewer", "GetProjects", "ProjectInternalId"} <= set(ops)
    assert "CreateProject" not in ops and ops.index("ProjectInternalId") < ops.index("upsertView")
    assert all(r.api_key == KEY for r in fake.requests)  # the key travels in the Authorization header only
    (view,) = fake.views.values()
    assert view["entityName"] == "lab-team"  # the spec had no entity: the key's default entity
    assert view["projectName"] == "distill_lab" and view["displayName"] == "Sweep fixture" and view["type"] == "runs"
    blocks = view["spec"]["blocks"]
    grids = [b for b in blocks if b["type"] == "panel-grid"]
    assert len(grids) == len(_grids(built["spec"]))
    for g in grids:  # at publish time every run set points at the project, by the id the server gave
        for rs in g["metadata"]["runSets"]:
            assert rs["project"] == {"entityName": "lab-team", "name": "distill_lab", "id": "internal-7"}
    assert sorted(panel_keys({"viewspec": {"spec": view["spec"]}})) == sorted(panel_keys(built["spec"]))
    url = f"{server.url}/lab-team/distill_lab/reports/Sweep-fixture--{next(iter(fake.views))}"
    assert result.summary["wandb_report_url"] == url and url in capsys.readouterr().out
    assert KEY not in spec_file.read_text() and KEY not in json.dumps(view)


def test_publish_in_the_same_run_prints_the_url(built, stand_in, tmp_path, capsys):
    fake, server = stand_in
    run_dir = tmp_path / "report"
    result = run_report(_report_cfg(built["sweep"], run_dir, "report.publish=true", "logger.entity=lab-team"), run_dir)
    out = capsys.readouterr()
    (view_id,) = fake.views
    assert result.artifacts["wandb_report_url"].endswith(f"/lab-team/distill_lab/reports/Sweep-fixture--{view_id}")
    assert "W&B Report published: " + result.artifacts["wandb_report_url"] in out.out
    assert (run_dir / REPORT_FILE).is_file()
    for p in run_dir.rglob("*"):  # manifests, logs, the spec, the W&B run files: no key anywhere
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p
    assert KEY not in out.out + out.err


def test_bad_inputs_are_named(built, tmp_path):
    bad = tmp_path / "not_a_spec.json"
    bad.write_text(json.dumps({"hello": 1}))
    cfg = compose_config(["student=tiny", f"report.publish_file={bad}"], stage="report")
    with pytest.raises(ConfigError, match=r"report.publish_file: .*not_a_spec.json: not a distill_lab W&B report"):
        report_stage.run(cfg, tmp_path)
    cfg = compose_config(["student=tiny", f"report.sweep_dir={built['sweep']}", "report.wandb_report=true"],
                         stage="report")
    with pytest.raises(ConfigError, match="report.wandb_report: needs logger=wandb"):
        run_report(cfg, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    empty = fx.fabricate(tmp_path / "nowandb")
    with pytest.raises(ConfigError, match=r"no W&B run files \(run-\*.wandb\) under .*nowandb"):
        run_report(_report_cfg(empty, tmp_path / "r2"), tmp_path / "r2")
    assert not (tmp_path / "r2").exists()


def test_publish_to_a_project_the_server_lacks_is_named(built, stand_in):
    fake, server = stand_in
    fake.projects.clear()
    with pytest.raises(WandbReportError, match=r"saving to http://127.0.0.1:\d+ failed: .*'lab-team/distill_lab' not found"):
        publish_file(built["run_dir"] / REPORT_FILE)
    assert not fake.views


def test_the_method_text_names_the_intervals_the_cells_have():
    """The sweep's cells carry a two-level interval from samples, or a t-interval over seeds where the runs
    kept no samples.jsonl: the Report's method says which, never 'Student-t' for bootstrap cells."""
    from distill_lab.stages.report.wandb_report import _interval_words

    boot = {"student_test_accuracy": {"mean": 0.5, "method": "two-level bootstrap"}}
    t = {"student_test_accuracy": {"mean": 0.5, "method": "t over seeds (no samples.jsonl)"}}
    assert "seeds and prompts together" in _interval_words([boot, boot], 0.95)
    assert "Student-t" not in _interval_words([boot, boot], 0.95)
    assert "1 of 2 cells without samples.jsonl" in _interval_words([boot, t], 0.95)
    assert "Student-t interval over seeds only" in _interval_words([t], 0.9) and "90%" in _interval_words([t], 0.9)
