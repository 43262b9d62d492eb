"""Sweep contrasts with one interval over seeds and prompts (``stages/report/contrasts.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_lab.stages.report.contrasts import contrast
from distill_lab.stages.report.sweep import write_report
from tests.test_sweep import _dataset, _metrics, _overrides


def _answers(n: int, right: int) -> dict[str, float]:
    return {f"p{i:02d}": float(i < right) for i in range(n)}


def test_a_contrast_of_certain_answers_is_never_zero_width():
    st = contrast([(_answers(40, 40), _answers(40, 0))], paired=True)
    assert st["mean"] == 1.0 and st["n_seeds"] == 1 and st["n_pairs"] == 1 and st["n_prompts"] == [40, 40]
    assert st["ci"][1] == 1.0 and 0.8 < st["ci"][0] < 0.95 and st["method"].startswith("newcombe")


def test_pairing_on_the_same_prompts_narrows_the_interval():
    # A gets prompts 0-29 right, B 0-24: they differ on 5 of the same 40 prompts (12.5 points)
    pairs = [(_answers(40, 30), _answers(40, 25))]
    paired, unpaired = contrast(pairs, paired=True), contrast(pairs, paired=False)
    assert paired["mean"] == unpaired["mean"] == pytest.approx(0.125)
    assert paired["ci"][0] > 0  # paired: only the 5 prompts that differ vary
    assert unpaired["ci"][0] < 0 < unpaired["ci"][1]  # independent resamples: not separable
    width = lambda s: s["ci"][1] - s["ci"][0]  # noqa: E731
    assert width(paired) < 0.6 * width(unpaired)


def test_seed_to_seed_spread_widens_the_one_interval():
    # the same prompts in 3 seeds: differences of 25, 35 and 15 points vs 25 in each seed
    varied = [(_answers(40, 30), _answers(40, 20)), (_answers(40, 34), _answers(40, 20)),
              (_answers(40, 26), _answers(40, 20))]
    steady = [(_answers(40, 30), _answers(40, 20))] * 3
    v, s = contrast(varied, paired=True), contrast(steady, paired=True)
    assert v["mean"] == s["mean"] == pytest.approx(0.25) and v["n_seeds"] == 3
    assert v["ci"][1] - v["ci"][0] > 1.2 * (s["ci"][1] - s["ci"][0])
    assert -1.0 <= v["ci"][0] and v["ci"][1] <= 1.0


def test_pairs_of_one_seed_are_resampled_together():
    # 6 pairs (3 sizes x 2 seeds): as 2 seed units the seed spread counts with 1 degree of freedom, not 5
    diffs = {0: 30, 1: 24}  # seed 0 always 30 points better, seed 1 24 (prompts 0.. right)
    pairs = [(_answers(40, 10 + diffs[sd] * 40 // 100), _answers(40, 10)) for sd in (0, 1) for _ in range(3)]
    seeds = [sd for sd in (0, 1) for _ in range(3)]
    by_seed = contrast(pairs, paired=True, seeds=seeds)
    as_independent = contrast(pairs, paired=True)
    assert by_seed["n_seeds"] == 2 and by_seed["n_pairs"] == 6 and as_independent["n_seeds"] == 6
    assert by_seed["mean"] == pytest.approx(as_independent["mean"])
    w = lambda s: s["ci"][1] - s["ci"][0]  # noqa: E731
    assert w(by_seed) > w(as_independent)


def test_prompts_missing_from_a_run_are_left_out_of_every_run():
    a = _answers(40, 40)
    del a["p00"]
    st = contrast([(a, _answers(40, 0))], paired=True)
    assert st["n_prompts"] == [39, 39]


def _samples(job: Path, student_right: dict[str, int], base_right: dict[str, int] | None) -> None:
    """20 test prompts per category (the same ids in every run): the first k right."""
    lines = []
    for model, right in (("student", student_right), ("base", base_right)):
        for cat, k in (right or {}).items():
            for i in range(20):
                score = {"student": 1.0, "base": 0.2}[model] if cat == "style" else float(i < k)  # the voice
                lines.append({"model": model, "prompt_id": f"{cat}{i:02d}", "split": "test", "category": cat,
                              "kind": "greedy", "sample_index": 0, "correct": i < k, "score": score})
    (job / "eval" / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _sweep(root: Path) -> Path:
    """efforts low/high x sizes 50/200 x seeds 0/1; high is 6 prompts (30 points) better on reasoning."""
    sweep = root / "sweep"
    for effort in ("low", "high"):
        for size in (50, 200):
            for seed in (0, 1):
                job = sweep / f"{effort}-{size}-{seed}"
                _overrides(job, [f"teacher.effort={effort}", f"recipe.size={size}", f"seed={seed}"])
                _dataset(job / "generate" / "dataset", effort, size, {"train": size, "test": 40, "ood": 0}, 0.0)
                reasoning = 8 + (6 if effort == "high" else 0) + seed
                (job / "eval").mkdir()
                acc = (18 + reasoning) / 40
                (job / "eval" / "metrics.json").write_text(json.dumps(_metrics(
                    {"test": acc}, {"test": 1.0}, {"test": 0.3})))
                _samples(job, {"style": 18, "reasoning": reasoning}, {"style": 10, "reasoning": 2})
                (job / "manifest.json").write_text(json.dumps({
                    "stage": "pipeline", "summary": {}, "config": {
                        "stage": "pipeline", "seed": seed, "student": {"name": "tiny"},
                        "teacher": {"provider": "oracle", "model": "oracle-v1", "effort": effort},
                        "recipe": {"size": size}}}))
    return sweep


def test_the_sweep_report_states_effort_size_category_and_gain_contrasts(tmp_path):
    res = write_report(_sweep(tmp_path), tmp_path / "out")
    rows = json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["contrasts"]
    by = {(r["kind"], r["contrast"], r["within"], r["split"]): r for r in rows}
    effort = by[("effort", "high - low", "all sizes", "test")]
    assert effort["mean"] == pytest.approx(6 / 40) and effort["n_pairs"] == 4  # matched on size and seed
    assert effort["n_seeds"] == 2  # the two sizes of one seed share it
    assert effort["ci"][0] > 0
    assert by[("effort", "high - low", "size 50", "test")]["n_pairs"] == 2
    size = by[("size", "200 - 50 rows", "all efforts", "test")]
    assert size["mean"] == 0.0 and size["ci"][0] < 0 < size["ci"][1]  # never zero width
    cat = by[("category", "style - reasoning", "tiny, high, 200", "test")]  # 18 vs 14.5 of 20 right
    assert cat["mean"] == pytest.approx((18 - 14.5) / 20) and cat["n_prompts"] == [20, 20]
    gain = by[("distilled - base", "style", "tiny, low, 50", "test")]
    assert gain["mean"] == pytest.approx(8 / 20) and gain["ci"][0] > 0
    voice = by[("distilled - base, graded score", "style", "tiny, low, 50", "test")]
    assert voice["mean"] == pytest.approx(0.8) and voice["ci"][0] < 0.8 < voice["ci"][1] <= 1.0
    assert ("distilled - base, graded score", "reasoning", "tiny, low, 50", "test") not in by  # score = correct
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "## Contrasts with one interval over seeds and prompts" in md
    assert "| effort | high - low | all sizes | test | +15.0 |" in md and "| 2 | 4 | 40 | yes |" in md


def test_runs_without_samples_give_no_contrasts(tmp_path):
    sweep = _sweep(tmp_path)
    for p in sweep.glob("*/eval/samples.jsonl"):
        p.unlink()
    res = write_report(sweep, tmp_path / "out")
    assert json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["contrasts"] == []
    assert "## Contrasts with one interval" not in Path(res["artifacts"]["sweep_md"]).read_text()


def test_the_sweep_cells_use_one_interval_over_seeds_and_prompts(tmp_path):
    res = write_report(_sweep(tmp_path), tmp_path / "out")
    cells = json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["cells"]
    cell = next(c for c in cells if c["effort"] == "high" and c["size"] == 200)
    style = cell["categories"]["test/style"]["student"]  # 18 of 20 in both seeds: the seeds agree
    assert style["mean"] == pytest.approx(0.9) and style["method"].startswith("wilson")
    assert style["ci"][0] < 0.9 < style["ci"][1] <= 1.0
    reasoning = cell["categories"]["test/reasoning"]["student"]  # 14 and 15 of 20: seeds differ
    assert reasoning["method"] == "two-level bootstrap" and reasoning["n_seeds"] == 2
    assert cell["student_test_accuracy"]["mean"] == pytest.approx((18 + 14.5) / 40)
    base = cell["categories"]["test/reasoning"]["base"]  # 2 of 20 in both seeds
    assert base["ci"][0] > 0 and base["ci"][1] > base["mean"]
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "interval over seeds and prompts together" in md and "Student-t interval over seeds only" not in md


def test_runs_without_samples_fall_back_to_the_seed_interval_and_say_so(tmp_path):
    sweep = _sweep(tmp_path)
    for p in sweep.glob("*/eval/samples.jsonl"):
        p.unlink()
    res = write_report(sweep, tmp_path / "out")
    cells = json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["cells"]
    assert cells[0]["student_test_accuracy"]["method"] == "t over seeds (no samples.jsonl)"
    assert "Student-t interval over seeds only" in Path(res["artifacts"]["sweep_md"]).read_text()


def test_family_figures_and_probe_contrasts_get_one_interval_from_samples(tmp_path):
    from distill_lab.stages.report.sweep_stats import families_two_level

    def answers(seed: int) -> dict:
        taught = {f"t{i}": (float(i < 14 + seed), float(i < 14 + seed), 1.0) for i in range(20)}
        untaught = {f"u{i}": (0.0, 0.0, float(i < 10)) for i in range(20)}
        return {("student", "test", "capital_facts"): taught, ("student", "test", "capital_facts_untaught"): untaught}

    out = families_two_level([answers(0), answers(1)], 0.95)
    untaught = out["families"]["test/capital_facts_untaught"]
    assert untaught["student_accuracy"]["mean"] == 0.0 and untaught["student_accuracy"]["ci"][1] > 0.1  # Wilson
    assert untaught["student_format"]["mean"] == pytest.approx(0.5)
    con = out["contrasts"]["taught - untaught facts"]["student"]
    assert con["mean"] == pytest.approx(14.5 / 20) and con["n_seeds"] == 2 and con["ci"][0] > 0
    assert con["ci"][1] <= 1.0


def test_every_arm_against_the_control_arm_paired_on_seed_and_prompts(tmp_path):
    """report.baseline names the control cell by its swept settings; each other cell is contrasted with the
    control's run of the same seed, on all prompts and per category."""
    from distill_lab.errors import ConfigError

    sweep = _sweep(tmp_path)
    res = write_report(sweep, tmp_path / "out", baseline={"teacher.effort": "low", "recipe.size": "50"})
    rows = json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["contrasts"]
    arm = {(r["contrast"], r["within"]): r for r in rows if r["kind"] == "arm" and r["split"] == "test"}
    assert sorted({c for c, _ in arm}) == ["recipe.size=200, teacher.effort=high - baseline",
                                           "recipe.size=200, teacher.effort=low - baseline",
                                           "recipe.size=50, teacher.effort=high - baseline"]
    high = "recipe.size=50, teacher.effort=high - baseline"
    assert arm[(high, "reasoning")]["mean"] == pytest.approx(6 / 20) and arm[(high, "reasoning")]["ci"][0] > 0
    assert arm[(high, "all prompts")]["mean"] == pytest.approx(6 / 40)
    assert arm[(high, "style")]["mean"] == 0.0 and arm[(high, "style")]["n_pairs"] == 2  # seeds 0 and 1, paired
    assert arm[(high, "reasoning")]["n_seeds"] == 2 and arm[(high, "reasoning")]["n_prompts"] == [20, 20]
    assert "| arm | recipe.size=50, teacher.effort=high - baseline | reasoning | test | +30.0 |" in Path(
        res["artifacts"]["sweep_md"]).read_text()
    with pytest.raises(ConfigError, match=r"report.baseline: recipe.effort_mix not swept in this sweep"):
        write_report(sweep, tmp_path / "x", baseline={"recipe.effort_mix": None})
    with pytest.raises(ConfigError, match=r"report.baseline: no finished run has \{'teacher.effort': 'medium'\}"):
        write_report(sweep, tmp_path / "y", baseline={"teacher.effort": "medium"})


@pytest.mark.parametrize(("overrides", "needle"), [
    (["report.sweep_dir=/x", "report.baseline=[recipe.size]"], "each item is key=value"),
    (["report.baseline=['recipe.size=50']"], "set report.sweep_dir too"),
])
def test_bad_baselines_are_config_errors(overrides, needle):
    from distill_lab.errors import ConfigError
    from tests.conftest import compose_config

    with pytest.raises(ConfigError, match=needle):
        compose_config(overrides, stage="report")
