"""The design check's assumptions measured from a pilot sweep (``report/pilot.py``, ``report.design_pilot``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.config import register_configs
from distill_lab.errors import ConfigError
from distill_lab.stages.report import pilot
from distill_lab.stages.report.design import Assumptions, check_design, design_markdown, mde
from distill_lab.stages.report.samples import pack_evidence
from tests.test_sweep import _dataset, _metrics, _overrides

# test-split prompts right (the first k of 10) per effort and seed: low 40/60/80 %, high 50/70 %
RIGHT = {"low": {0: 4, 1: 6, 2: 8}, "high": {0: 5, 1: 7}}
N = 10
SD_LOW, SD_HIGH = 0.2, math.sqrt(0.02)  # sample SDs over seeds: of (.4, .6, .8) and of (.5, .7)
POOLED_SD = math.sqrt((2 * SD_LOW ** 2 + 1 * SD_HIGH ** 2) / 3)  # weighted by seeds - 1
MEAN_ACC = (0.4 + 0.6 + 0.8 + 0.5 + 0.7) / 5
# low vs high at seeds 0 and 1 over the same prompts (first a vs first b of 10 right): the sums of
# cross-products about each group's means are min(a, b) - ab/10, of squares a - a^2/10
SXY = (4 - 4 * 5 / N) + (6 - 6 * 7 / N)
SXX = (4 - 16 / N) + (6 - 36 / N)
SYY = (5 - 25 / N) + (7 - 49 / N)
RHO = SXY / math.sqrt(SXX * SYY)  # 0.809


@pytest.fixture(autouse=True)
def _schema():
    register_configs()


def _sweep(root: Path, right: dict[str, dict[int, int]] = RIGHT) -> Path:
    sweep = root / "pilot"
    for effort, seeds in right.items():
        for seed, k in seeds.items():
            job = sweep / f"{effort}-{seed}"
            _overrides(job, [f"teacher.effort={effort}", "recipe.size=100", f"seed={seed}"])
            _dataset(job / "generate" / "dataset", effort, 100, {"train": 100, "test": N, "ood": 0}, 0.0)
            (job / "eval").mkdir()
            # metrics.json says 0.99: the pilot must read the greedy answers, as the sweep report does
            (job / "eval" / "metrics.json").write_text(json.dumps(_metrics({"test": 0.99}, {"test": 1.0},
                                                                           {"test": 0.1})))
            lines = [{"model": "student", "prompt_id": f"p{i}", "split": "test", "category": "reasoning",
                      "kind": "greedy", "sample_index": 0, "correct": i < k} for i in range(N)]
            (job / "eval" / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
            (job / "manifest.json").write_text(json.dumps({"stage": "pipeline", "summary": {}, "config": {
                "stage": "pipeline", "seed": seed, "student": {"name": "tiny"},
                "teacher": {"provider": "oracle", "model": "oracle-v1", "effort": effort}, "recipe": {"size": 100}}}))
    return sweep


def test_the_pilot_measures_seed_sd_accuracy_and_correlation_from_a_folder_and_its_pack(tmp_path):
    sweep = _sweep(tmp_path)
    packed = pack_evidence(sweep, tmp_path / "samples.jsonl.gz")["file"]
    for source in (sweep, packed):
        p = pilot.measure(source)
        cells = {c["cell"]: c for c in p["cells"]}
        assert cells["low, 100"]["seed_sd"]["test"] == pytest.approx(SD_LOW)
        assert cells["high, 100"]["seed_sd"]["test"] == pytest.approx(SD_HIGH)
        t = p["splits"]["test"]
        assert t["seed_sd"] == pytest.approx(POOLED_SD) and (t["sd_cells"], t["sd_df"]) == (2, 3)
        assert t["accuracy"] == pytest.approx(MEAN_ACC) and t["runs"] == 5
        assert t["prompt_corr"] == pytest.approx(RHO) and t["corr_pairs"] == 1 and t["corr_points"] == 2 * N
        assert set(p["splits"]) == {"test"} and p["source"] == str(source)


def test_the_mde_uses_the_measured_values_and_the_record_says_where_each_came_from(tmp_path):
    p = pilot.measure(_sweep(tmp_path))
    by_split, sources = pilot.assumptions(p, Assumptions(), set())
    d = check_design(["experiment=effort_x_size"], [], Assumptions(), by_split)
    d["pilot"], d["assumption_sources"] = p, sources
    measured = Assumptions(accuracy=MEAN_ACC, seed_sd=POOLED_SD, prompt_corr=RHO)
    test = next(r for r in d["resolution"] if r["split"] == "test" and r["category"] == "all")
    ood = next(r for r in d["resolution"] if r["split"] == "ood" and r["category"] == "all")
    assert test["mde"] == pytest.approx(mde(2, 40, measured)["mde"])
    assert ood["mde"] == pytest.approx(mde(2, 40, Assumptions())["mde"])  # the pilot has no ood: configured
    assert test["mde"] != pytest.approx(ood["mde"])
    assert d["assumptions_by_split"]["test"]["seed_sd"] == pytest.approx(POOLED_SD)
    assert sources["test"]["seed_sd"].startswith(f"measured from {p['source']}: pooled over 2 cells")
    md = design_markdown(d)
    assert f"| test | 60.0% | {100 * POOLED_SD:.1f} | {RHO:.2f} | accuracy: measured, mean of 5 runs" in md
    assert "| ood | 50.0% | 5.0 | 0.50 | configured |" in md
    assert "Seed SD assumed, not measured, for ood" in md
    assert "| low, 100 | 3 | 40, 60, 80 | 20.0 |" in md


def test_a_value_set_on_the_command_line_wins_and_a_missing_correlation_keeps_the_configured_one(tmp_path):
    p = pilot.measure(_sweep(tmp_path, {"low": {0: 4, 1: 6}, "high": {2: 5, 3: 7}}))  # no shared seed
    assert p["splits"]["test"]["prompt_corr"] is None
    by_split, sources = pilot.assumptions(p, Assumptions(seed_sd=0.05, prompt_corr=0.3), {"report.design_seed_sd"})
    a = by_split["test"]
    assert (a.seed_sd, a.prompt_corr) == (0.05, 0.3) and a.accuracy == pytest.approx(0.55)
    assert sources["test"]["seed_sd"].startswith("configured (report.design_seed_sd on the command line")
    assert "no two cells share a seed" in sources["test"]["prompt_corr"]
    neg = {**p["splits"]["test"], "prompt_corr": -0.2, "corr_pairs": 1, "corr_points": 20}
    by_split, sources = pilot.assumptions({**p, "splits": {"test": neg}}, Assumptions(), set())
    assert by_split["test"].prompt_corr == 0.0 and "measured -0.200, used 0" in sources["test"]["prompt_corr"]


def test_a_pilot_that_measures_nothing_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"report.design_pilot: .*nowhere does not exist"):
        pilot.measure(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"report.design_pilot: .*no cell with 2\+ seeds.*low, 100: seed 0"):
        pilot.measure(_sweep(tmp_path / "one", {"low": {0: 4}, "high": {0: 5}}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="report.design_pilot: .*holds no job folders"):
        pilot.measure(tmp_path / "empty")
    _overrides(tmp_path / "dead" / "0", ["seed=0"])  # a job that never finished
    with pytest.raises(ConfigError, match="report.design_pilot: .*dead holds no finished runs"):
        pilot.measure(tmp_path / "dead")
    from distill_lab.stages.report.config import ReportConfig

    with pytest.raises(ConfigError, match="report.design_pilot: .*report.check_design=true"):
        ReportConfig(design_pilot=str(tmp_path))


CMD = [sys.executable, "-m", "distill_lab.stages.report", "report.check_design=true", "experiment=effort_x_size"]


def test_the_cli_measures_the_pilot(tmp_path):
    packed = pack_evidence(_sweep(tmp_path), tmp_path / "samples.jsonl.gz")["file"]
    out = subprocess.run([*CMD, f"report.design_pilot={packed}", f"run_dir={tmp_path / 'ok'}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"Measured from the pilot `{packed}`" in out.stdout
    d = json.loads((tmp_path / "ok" / "design.json").read_text())
    assert d["pilot"]["splits"]["test"]["seed_sd"] == pytest.approx(POOLED_SD)
    assert d["assumption_sources"]["test"]["accuracy"] == f"measured from {packed}: mean of 5 runs"


@pytest.mark.slow
def test_the_cli_refuses_a_missing_pilot_before_anything_runs(tmp_path):
    bad = subprocess.run([*CMD, f"report.design_pilot={tmp_path / 'nowhere.jsonl.gz'}", f"run_dir={tmp_path / 'bad'}"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "report.design_pilot" in bad.stderr and "nowhere.jsonl.gz does not exist" in bad.stderr
    assert not (tmp_path / "bad" / "design.md").exists()
