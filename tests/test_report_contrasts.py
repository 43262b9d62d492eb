"""Sweep contrasts with intervals over prompts and over seeds (``stages/report/contrasts.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_lab.stages.report.contrasts import contrast
from distill_lab.stages.report.sweep import write_report
from tests.test_sweep import _dataset, _metrics, _overrides


def _answers(n: int, right: int) -> dict[str, float]:
    return {f"p{i:02d}": float(i < right) for i in range(n)}


def test_a_contrast_of_certain_answers_has_no_width_and_one_pair_has_no_seed_interval():
    st = contrast([(_answers(40, 40), _answers(40, 0))], paired=True)
    assert st["mean"] == 1.0 and st["ci_prompts"] == [1.0, 1.0]
    assert st["ci_pairs"] is None and st["n_pairs"] == 1 and st["n_prompts"] == [40, 40]


def test_pairing_on_the_same_prompts_narrows_the_interval():
    # A gets prompts 0-29 right, B 0-24: they differ on 5 of the same 40 prompts (12.5 points)
    pairs = [(_answers(40, 30), _answers(40, 25))]
    paired, unpaired = contrast(pairs, paired=True), contrast(pairs, paired=False)
    assert paired["mean"] == unpaired["mean"] == pytest.approx(0.125)
    assert paired["ci_prompts"][0] > 0  # paired: only the 5 prompts that differ vary
    assert unpaired["ci_prompts"][0] < 0 < unpaired["ci_prompts"][1]  # independent resamples: not separable
    width = lambda s: s["ci_prompts"][1] - s["ci_prompts"][0]  # noqa: E731
    assert width(paired) < 0.6 * width(unpaired)  # 20 vs 40 points here


def test_the_seed_interval_comes_from_the_pairs():
    pairs = [(_answers(40, 30), _answers(40, 20)), (_answers(40, 34), _answers(40, 20)),
             (_answers(40, 26), _answers(40, 20))]
    st = contrast(pairs, paired=True)
    assert st["mean"] == pytest.approx(0.25)
    lo, hi = st["ci_pairs"]  # differences .25, .35, .15: sd .1, t(2) = 4.303
    assert lo == pytest.approx(0.25 - 4.303 * 0.1 / 3 ** 0.5, abs=1e-3)
    assert hi == pytest.approx(0.25 + 4.303 * 0.1 / 3 ** 0.5, abs=1e-3)


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
    assert effort["ci_pairs"] == [pytest.approx(0.15), pytest.approx(0.15)]  # the same gain in every pair
    assert effort["ci_prompts"][0] > 0
    assert by[("effort", "high - low", "size 50", "test")]["n_pairs"] == 2
    size = by[("size", "200 - 50 rows", "all efforts", "test")]
    assert size["mean"] == 0.0 and size["ci_prompts"] == [0.0, 0.0]
    cat = by[("category", "style - reasoning", "tiny, high, 200", "test")]  # 18 vs 14.5 of 20 right
    assert cat["mean"] == pytest.approx((18 - 14.5) / 20) and cat["n_prompts"] == [20, 20]
    gain = by[("distilled - base", "style", "tiny, low, 50", "test")]
    assert gain["mean"] == pytest.approx(8 / 20) and gain["ci_prompts"][0] > 0
    voice = by[("distilled - base, graded score", "style", "tiny, low, 50", "test")]
    assert voice["mean"] == pytest.approx(0.8) and voice["ci_prompts"] == [pytest.approx(0.8), pytest.approx(0.8)]
    assert ("distilled - base, graded score", "reasoning", "tiny, low, 50", "test") not in by  # score = correct
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "## Contrasts with intervals over prompts and over seeds" in md
    assert "| effort | high - low | all sizes | test | +15.0 |" in md and "| 4 | 40 | yes |" in md


def test_runs_without_samples_give_no_contrasts(tmp_path):
    sweep = _sweep(tmp_path)
    for p in sweep.glob("*/eval/samples.jsonl"):
        p.unlink()
    res = write_report(sweep, tmp_path / "out")
    assert json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["contrasts"] == []
    assert "## Contrasts with intervals" not in Path(res["artifacts"]["sweep_md"]).read_text()
