"""What each point of accuracy cost: projected teacher prices from token counts, the Pareto frontier, the
sweep report's cost table, frontier table and plot (values read back from the plot's JSON sidecar)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from distill_lab.artifacts.run_cost import RunCost, count_tokens, train_flops
from distill_lab.errors import ConfigError
from distill_lab.stages.report.frontier import cheapest_within, pareto_front
from distill_lab.stages.report.sweep import SweepError, write_report
from distill_lab.teachers.anthropic_models import LIST_PRICES
from distill_lab.teachers.cost import projected_cost

from . import sweep_fixture as fx
from .conftest import compose_config

REPO = Path(__file__).resolve().parents[1]


def test_projected_cost_from_token_counts():
    assert projected_cost("claude-opus-4-7", 1_000_000, 0) == pytest.approx(5.0)
    assert projected_cost("claude-opus-4-7", 0, 1_000_000) == pytest.approx(25.0)
    assert projected_cost("claude-sonnet-4-6-20260101", 2000, 1000, 1000, 10_000) == pytest.approx(
        (2000 * 3 + 1000 * 15 + 1000 * 3.75 + 10_000 * 0.3) / 1e6)
    with pytest.raises(ValueError, match="no list prices for 'gpt-9'.*claude-opus-4-7"):
        projected_cost("gpt-9", 1, 1)


def test_list_prices_agree_with_the_teacher_configs():
    seen = 0
    for path in sorted((REPO / "src/distill_lab/conf/teacher").glob("anthropic*.yaml")):
        conf = yaml.safe_load(path.read_text())
        p = conf["prices"]
        assert LIST_PRICES[conf["model"]] == (p["input"], p["output"], p["cache_write"], p["cache_read"]), path
        seen += 1
    assert seen >= 4


def test_token_counts_from_usage_or_estimated_from_text():
    est = count_tokens(fx.rows("high", 2), chars_per_token=4)
    assert (est.input_tokens, est.output_tokens, est.rows) == (60, 120, 6) and "estimated" in est.source
    billed = count_tokens(fx.rows("high", 2, usage={"input_tokens": 7, "output_tokens": 3,
                                                    "cache_read_input_tokens": 2}))
    assert (billed.input_tokens, billed.output_tokens, billed.cache_read_tokens, billed.source) == (42, 18, 12, "usage")
    # rows with usage beside rows without (imports): each row counted its own way, never as zero
    mixed = count_tokens(fx.rows("high", 2, usage={"input_tokens": 7, "output_tokens": 3})[:3] + fx.rows("high", 2)[3:],
                         chars_per_token=4)
    assert (mixed.input_tokens, mixed.output_tokens) == (3 * 7 + 30, 3 * 3 + 60)
    assert mixed.source.startswith("usage; 3 of 6 rows without usage estimated")
    assert train_flops(1000, 200) == 6 * 1000 * 200 and train_flops(None, 200) is None
    c = RunCost(teacher_usd=1.5, extra_usd={"voting": 0.5, "rl_rollouts": 2.0})
    assert c.total_usd == pytest.approx(4.0) and c.to_json()["total_usd"] == pytest.approx(4.0)


def test_pareto_front_and_cheapest_within():
    pts = [(1.0, 0.50), (1.4, 0.70), (3.3, 0.60), (4.4, 0.72), (1.4, 0.70), (0.5, 0.10)]
    assert pareto_front(pts) == [5, 0, 1, 4, 3]  # ties both kept; (3.3, .60) is dominated by (1.4, .70)
    assert cheapest_within(pts, 5) == 1  # 0.70 is within 5 points of 0.72 and cheaper
    assert cheapest_within(pts, 1) == 3
    assert cheapest_within(pts, 100) == 5
    assert cheapest_within([], 5) is None


def test_sweep_report_projects_the_oracle_and_marks_the_frontier(tmp_path):
    sweep = fx.fabricate(tmp_path, extra_usd={"voting": 0.25})
    out = tmp_path / "report"
    res = write_report(sweep, out, price_model="claude-opus-4-7", frontier_points=5)
    price_in, price_out = LIST_PRICES["claude-opus-4-7"][:2]
    want = {(e, s): fx.projected_usd(e, s, price_in, price_out) for e, s in fx.ACCURACY}
    by_cell = {(r["effort"], r["size"]): r for r in res["rows"]}
    for key, usd in want.items():
        assert by_cell[key]["teacher_usd"] == pytest.approx(usd)
        assert by_cell[key]["teacher_usd_kind"] == "projected" and by_cell[key]["price_model"] == "claude-opus-4-7"
        assert by_cell[key]["train_flops"] == pytest.approx(6 * fx.PARAMS * fx.SUPERVISED[key])
        assert by_cell[key]["total_usd"] == pytest.approx(usd + 0.25)  # the voting hook counts
    # the plot's values, read back from its sidecar: every cell at its projected USD, the frontier's members
    side = json.loads((out / "frontier_teacher_usd.json").read_text())
    assert (out / "frontier_teacher_usd.png").stat().st_size > 1000
    pts = {p["label"]: p for p in side["points"]}
    for (e, s), usd in want.items():
        assert pts[f"{e}, {s}"]["x"] == pytest.approx(usd) and pts[f"{e}, {s}"]["y"] == fx.ACCURACY[(e, s)]
    assert [p["label"] for p in side["frontier"]] == ["low, 2", "low, 4", "high, 4"]
    assert not pts["high, 2"]["on_frontier"]
    assert side["cheapest_within"]["label"] == "low, 4" and "claude-opus-4-7" in side["xlabel"]
    tok = json.loads((out / "frontier_train_tokens.json").read_text())
    assert [p["x"] for p in tok["frontier"]] == [100, 200, 800]
    md = (out / "sweep.md").read_text()
    assert "PROJECTED at claude-opus-4-7 list prices" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| high, 2 | 1 |"))
    assert f"${want[('high', 2)]:.4g}" in line and "| 60 | 120 | 400 | 2.4e+06 |" in line and "Fixture CPU" in line
    assert re.search(r"Cheapest setting within 5 points of the best \(high, 4, 72.0 %\): \*\*low, 4\*\*", md)
    runs_csv = (out / "sweep_runs.csv").read_text()
    assert "teacher_usd_kind" in runs_csv.splitlines()[0] and "projected" in runs_csv


def test_paid_teacher_spend_is_not_projected(tmp_path):
    sweep = fx.fabricate(tmp_path, paid_usd_per_row=0.01)
    res = write_report(sweep, tmp_path / "r", price_model="claude-opus-4-7")
    cell = next(r for r in res["rows"] if (r["effort"], r["size"]) == ("low", 4))
    assert cell["teacher_usd"] == pytest.approx(0.08) and cell["teacher_usd_kind"] == "paid"
    assert "what the teacher's requests cost" in (tmp_path / "r" / "sweep.md").read_text()


def test_oracle_without_a_price_model_says_how_to_project(tmp_path):
    sweep = fx.fabricate(tmp_path)
    res = write_report(sweep, tmp_path / "r")
    assert "teacher_usd" not in res["frontiers"] and "train_tokens" in res["frontiers"]
    assert not (tmp_path / "r" / "frontier_teacher_usd.png").exists()
    assert "set report.projected_price_model=" in (tmp_path / "r" / "sweep.md").read_text()


def test_projection_without_rows_names_the_run(tmp_path):
    sweep = fx.fabricate(tmp_path)
    (sweep / "2" / "generate" / "dataset" / "rows.jsonl").unlink()
    with pytest.raises(SweepError, match=r"2: report.projected_price_model=claude-opus-4-7 needs .*no rows.jsonl"):
        write_report(sweep, tmp_path / "r", price_model="claude-opus-4-7")
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_report_config_names_a_model_without_prices():
    with pytest.raises(ConfigError, match=r"report.projected_price_model: 'claude-x' has no list prices"):
        compose_config(["student=tiny", "report.projected_price_model=claude-x"], stage="report")
    with pytest.raises(ConfigError, match="report.publish: needs report.wandb_report=true"):
        compose_config(["student=tiny", "report.publish=true"], stage="report")


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cost_frontier", REPO / "experiments/effort_x_size/cost_frontier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_effort_study_script_projects_each_committed_cell(tmp_path):
    """experiments/effort_x_size/cost_frontier.py on a sweep.json and datasets of known size and text."""
    sweep = {"cells": [], "runs": []}
    datasets = {}
    for (effort, size), acc in fx.ACCURACY.items():
        sweep["cells"].append({"effort": effort, "size": size, "student_test_accuracy": {"mean": acc},
                               "train_tokens": fx.SUPERVISED[(effort, size)], "n_runs": 1})
        sweep["runs"].append({"status": "ok", "effort": effort, "size": size, "train_rows": size, "wall_s": 7.0})
        d = tmp_path / f"{effort}_{size}"
        d.mkdir()
        (d / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fx.rows(effort, size)))
        datasets[(effort, size)] = d
    rows = _script().cell_rows(sweep, datasets, "claude-sonnet-4-6", 4.0, "Fixture CPU")
    for r in rows:
        assert r["teacher_usd"] == pytest.approx(fx.projected_usd(r["effort"], r["size"], 3.0, 15.0))
        assert r["teacher_usd_kind"] == "projected" and r["wall_s"] == 7.0
    sweep["runs"][0]["train_rows"] = 3  # a regenerated dataset that is not the one the runs used
    with pytest.raises(SystemExit, match=r"low_2: 2 train rows, the runs trained on \[3\]"):
        _script().cell_rows(sweep, datasets, "claude-sonnet-4-6", 4.0, "Fixture CPU")


def test_an_unreadable_manifest_is_named_not_read_as_no_cost(tmp_path):
    from distill_lab.stages.report.costs import CostError, run_cost

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "manifest.json").write_text('{"summary": {"supervised_tokens": 12')
    with pytest.raises(CostError, match=r"train/manifest\.json:1: not valid JSON"):
        run_cost(tmp_path, None, None)
    (tmp_path / "train" / "manifest.json").write_text('{"summary": {"supervised_tokens": 12, "params_total": 5}}')
    assert run_cost(tmp_path, None, None).train_flops == 6 * 5 * 12


def test_generation_tokens_rl_rollouts_and_tokens_per_answer(tmp_path):
    """A remedy's generation cost: the rl stage's rollout tokens and the student's tokens per greedy answer."""
    from distill_lab.stages.report.costs import cell_costs, run_cost

    job = tmp_path / "job"
    (job / "rl").mkdir(parents=True)
    (job / "eval").mkdir()
    (job / "rl" / "manifest.json").write_text(json.dumps({"stage": "rl", "summary": {"rollout_tokens": 1234}}))
    recs = [{"model": "student", "kind": "greedy", "output_tokens": 10}, {"model": "student", "kind": "greedy",
            "output_tokens": 30}, {"model": "student", "kind": "sample", "output_tokens": 999},
            {"model": "base", "kind": "greedy", "output_tokens": 500}]
    (job / "eval" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    cost = run_cost(job, None, None)
    assert cost.rl_rollout_tokens == 1234 and cost.answer_tokens == 20.0  # greedy answers of the student only
    plain = run_cost(tmp_path / "no_rl", None, None)
    assert plain.rl_rollout_tokens is None and plain.answer_tokens is None

    class R:  # a run with its cost record, as the sweep report holds it
        def __init__(self, c):
            self.cost = c.to_json()
    cell = cell_costs([R(cost), R(RunCost(rl_rollout_tokens=766, answer_tokens=40.0))])
    assert cell["rl_rollout_tokens"] == 1000 and cell["answer_tokens"] == 30.0
