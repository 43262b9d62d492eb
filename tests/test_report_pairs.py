"""Paired probe contrasts: eval records carry the dataset row's pair_id, and the sweep report analyses
announced - unannounced edge cases paired on items (seeds and items resampled together), falling back to
the unpaired analysis, named, where the records carry no pair_id."""

from __future__ import annotations

import json

import numpy as np

from distill_lab.stages.report.samples import family_answers
from distill_lab.stages.report.sweep import write_report
from distill_lab.stages.report.sweep_stats import PAIRED, UNPAIRED, families_two_level
from tests.test_report_samples import _jobs
from tests.test_sweep import fabricate_pipeline_sweep

CONTRAST = "announced - unannounced edge cases (test)"


def _records(seed: int, pair: bool, n_items: int = 60) -> list[dict]:
    """One run's greedy answers: the same hint effect (+1 logit) on every item, items from almost always
    right to almost never (difficulty -5 .. 5), one draw per item and seed shared by both sides."""
    rng = np.random.default_rng(100 + seed)
    out = []
    for i, d in enumerate(np.linspace(-5, 5, n_items)):
        u = rng.random()
        for fam, effect in (("edge_checks", 1.0), ("edge_checks_unannounced", 0.0)):
            out.append({"model": "student", "split": "test", "prompt_id": f"{fam}/{i}", "category": "edge_case",
                        "task": fam, "kind": "greedy", "correct": bool(u < 1 / (1 + np.exp(d - effect))),
                        **({"pair_id": f"pair{i}"} if pair else {})})
    return out


def _width(st):
    return st["ci"][1] - st["ci"][0]


def test_paired_items_give_a_much_narrower_interval_that_excludes_zero():
    paired, unpaired = (families_two_level([family_answers(_records(s, pair)) for s in range(3)],
                                                            0.95)["contrasts"][CONTRAST]["student"]
                        for pair in (True, False))
    assert paired["pairing"] == PAIRED and unpaired["pairing"] == UNPAIRED
    assert paired["mean"] == unpaired["mean"] > 0  # the same answers: only the interval changes
    assert paired["ci"][0] > 0  # separated
    assert unpaired["ci"][0] < 0  # the items' difficulty swamps the hint when the pairs are ignored
    assert _width(paired) < 0.5 * _width(unpaired)
    assert paired["n_prompts"] == 60 and paired["n_seeds"] == 3


def test_a_side_without_pair_ids_falls_back_to_unpaired():
    runs = [_records(s, True) for s in range(3)]
    for r in runs[1]:
        if r["prompt_id"] == "edge_checks_unannounced/7":
            del r["pair_id"]  # one answer unpaired: the contrast is not paired item by item
    st = families_two_level([family_answers(r) for r in runs], 0.95)["contrasts"][CONTRAST]["student"]
    assert st["pairing"] == UNPAIRED


def test_the_sweep_report_names_the_paired_analysis(tmp_path):
    sweeps = {}
    for pair in (True, False):
        sw = fabricate_pipeline_sweep(tmp_path / str(pair))
        for job, (_effort, _size, seed) in _jobs(sw).items():
            (job / "eval" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records(seed, pair)))
        write_report(sw, tmp_path / f"out{pair}")
        sweeps[pair] = json.loads((tmp_path / f"out{pair}" / "sweep.json").read_text())
    for pair, label in ((True, PAIRED), (False, UNPAIRED)):
        cells = sweeps[pair]["cells"]
        assert len(cells) == 4 and all(c["contrasts"][CONTRAST]["student"]["pairing"] == label for c in cells)
        md = (tmp_path / f"out{pair}" / "sweep.md").read_text()
        rows = [line for line in md.splitlines() if f"| {CONTRAST} |" in line]
        assert len(rows) == 4 and all(f"| {label} |" in line for line in rows)
    a, b = (sweeps[p]["cells"][0]["contrasts"][CONTRAST]["student"] for p in (True, False))
    assert a["mean"] == b["mean"] and _width(a) < 0.5 * _width(b)


def test_eval_records_carry_the_dataset_rows_pair_id(tmp_path):
    from distill_lab.stages.evaluate.prompts import load_heldout
    from distill_lab.stages.evaluate.run import make_record
    from tests.test_recipe_probes import save_probe_dataset

    save_probe_dataset(tmp_path)
    recs = [make_record("student", p, "greedy", 0, "no answer", n_tokens=3, runaway=False)
            for p in load_heldout(tmp_path, ["test"])]
    by_pair: dict[str, list[str]] = {}
    for r in recs:
        if r["pair_id"] is not None:
            by_pair.setdefault(r["pair_id"], []).append(r["family"])
    assert by_pair and all(sorted(f) == ["edge_checks", "edge_checks_unannounced"] for f in by_pair.values())
    assert all(r["pair_id"] is None for r in recs if not r["family"].startswith("edge_checks"))
