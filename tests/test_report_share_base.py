"""The base measured once per cell (``eval.include_base=false`` in the other runs): the sweep report gives
its answers to the cell's runs that skipped it, so the base has the figure it would have had measured in
every run, and the setting splits no cell. A base that answered differently, or other prompts, is never
shared."""

from __future__ import annotations

import json

from distill_lab.stages.report.samples import answers as to_answers
from distill_lab.stages.report.sweep import write_report
from distill_lab.stages.report.sweep_stats import share_base
from tests.test_report_samples import _jobs
from tests.test_sweep import fabricate_pipeline_sweep

N = 40


def _records(seed: int, with_base: bool, base_right: int = 10) -> list[dict]:
    out = []
    for i in range(N):
        common = {"split": "test", "prompt_id": f"addition/{i}", "category": "reasoning", "task": "addition",
                  "kind": "greedy"}
        out.append({**common, "model": "student", "correct": i < 20 + seed})
        if with_base:
            out.append({**common, "model": "base", "correct": i < base_right})
    return out


def test_the_base_of_one_run_is_given_to_the_runs_that_skipped_it():
    runs = [to_answers(_records(s, s == 0)) for s in range(3)]
    shared = share_base(runs)
    for a in shared:
        assert sum(v[1] for k, v in a.items() if k[0] == "base") == 10
        assert sum(1 for k in a if k[0] == "student") == N  # the student's own answers untouched
    assert shared[0] is runs[0]


def test_bases_that_disagree_or_other_prompts_are_not_shared():
    runs = [to_answers(_records(0, True)), to_answers(_records(1, True, base_right=11)), to_answers(_records(2, False))]
    assert not any(k[0] == "base" for k in share_base(runs)[2])
    other = [r for r in _records(2, False) if r["prompt_id"] != "addition/3"]
    runs = [to_answers(_records(0, True)), to_answers(other)]
    assert not any(k[0] == "base" for k in share_base(runs)[1])


def test_the_sweep_report_shows_the_base_measured_once_and_keeps_the_cells(tmp_path):
    sw = fabricate_pipeline_sweep(tmp_path)
    for job, (_effort, _size, seed) in _jobs(sw).items():
        (job / "eval" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                            for r in _records(seed, seed == 0)))
        if seed:  # the other seeds skipped the base: an override in their hydra files
            ov = job / ".hydra" / "overrides.yaml"
            ov.write_text(ov.read_text() + "- eval.include_base=false\n")
    write_report(sw, tmp_path / "out")
    cells = json.loads((tmp_path / "out" / "sweep.json").read_text())["cells"]
    assert len(cells) == 4  # eval.include_base splits no cell
    for c in cells:
        assert c["seeds"] == [0, 1, 2]
        assert c["base_test_accuracy"]["mean"] == 10 / N
        assert c["student_test_accuracy"]["mean"] == (20 + 21 + 22) / 3 / N
    md = (tmp_path / "out" / "sweep.md").read_text()
    assert "different settings" not in md
