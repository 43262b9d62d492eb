"""The effort study's committed results, regenerated from the evidence that exists (2026-12-03).

    python experiments/effort_x_size/regenerate.py        # from the repository root; writes results_smollm2/evidence.md, base_eval_rescored/, base_report/

What is committed from the SmolLM2 grid (18 runs, `results_smollm2/`): the report's tables
(`sweep_runs.csv`, `sweep.json`: per run the accuracies from each run's metrics.json) and the base
model's eval run with its samples (`base_eval/`). The 18 student runs' samples were never committed and
their run folders are gone: their truncation and unclosed-thinking shares, and a re-scoring under the
rule that a truncated output is wrong and never parsed, are **not recoverable**.

What can be recomputed:
1. the teacher's own answers under the study's budget (176 tokens): the oracle is deterministic, so its
   answers to the study's 40 test and 40 OOD prompts are regenerated offline and measured in SmolLM2's
   tokens (`teacher_budget.py`); every run of an effort shares these prompts, so each cell's share of the
   teacher's answers that 176 cuts is its effort's;
2. the base model's committed samples, re-scored under the new rules (a truncated output never parsed)
   into `base_eval_rescored/metrics.json` (with the budget check computed offline; the re-scored samples
   are derived from `base_eval/samples.jsonl` by this script and not committed twice), and the new
   single-run report on them (`base_report/`);
3. the error classes of every wrong answer in the committed samples (`column_errors.py`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from statistics import mean

from distill_lab.app import compose_config
from distill_lab.stages.common import run_stage
from distill_lab.stages.evaluate.config import EvalConfig
from distill_lab.stages.evaluate.extract import score_output
from distill_lab.stages.evaluate.run import assemble_metrics, outcome_of, write_outputs
from distill_lab.stages.report.samples import greedy_shares, read_samples

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results_smollm2"
BUDGET = 176


def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rescore(records: list[dict]) -> list[dict]:
    """The committed records under the new rules: a truncated (runaway) output is wrong and never parsed."""
    out = []
    for r in records:
        r = dict(r)
        truncated = bool(r.get("truncated", r.get("runaway", False)))
        s = score_output(r["output"], r["task"], r["reference"], truncated=truncated)
        r.update(extracted=s.extracted, correct=s.correct, score=s.score, truncated=truncated,
                 unclosed_thinking=s.parsed.think_unclosed, outcome=outcome_of(s.correct, truncated, s.parsed.think_unclosed))
        out.append(r)
    return out


def base_evidence(teacher_rows: list[dict]) -> dict:
    old = read_samples(RESULTS / "base_eval" / "samples.jsonl", seed=0)
    new = rescore(old)
    old_metrics = json.loads((RESULTS / "base_eval" / "metrics.json").read_text())
    ec = EvalConfig(dataset_dir=old_metrics["dataset_dir"], max_new_tokens=BUDGET, bootstrap=1000)
    m = assemble_metrics(new, ec, student=old_metrics["student"], eval_config=old_metrics["eval"])
    # the budget check, computed offline: the base eval read the effort=low dataset's teacher answers
    low = {r["split"]: r for r in teacher_rows if r["effort"] == "low"}
    m.extra["budgets"] = {s: {"max_new_tokens": BUDGET, "source": "explicit (checked offline, 2026-12-03)",
                              "teacher_longest": low[s]["longest"], "teacher_longest_prompt": None,
                              "teacher_answers": low[s]["answers"], "margin": None,
                              "below_teacher": low[s]["longest"] > BUDGET, "teacher_cut_share": low[s]["cut"] / low[s]["answers"]}
                          for s in ("test", "ood")}
    m.extra["truncation_allowed"] = False
    m.extra["rescored_from"] = "results_smollm2/base_eval/samples.jsonl (truncated outputs never parsed)"
    write_outputs(RESULTS / "base_eval_rescored", m, new)
    rel = Path(os.path.relpath(RESULTS))  # paths in the committed report: relative to where it was run (the repo)
    rep = compose_config([f"report.eval_dirs=[{rel / 'base_eval_rescored'}]",
                          f"report.output_dir={rel / 'base_report'}"], stage="report")
    run_stage("report", rep, rel / "base_report" / "run")
    # the re-scored samples are base_eval/samples.jsonl under the new rule: derived, not committed twice
    (RESULTS / "base_eval_rescored" / "samples.jsonl").unlink()
    shares = {}
    for split in ("test", "ood"):
        a, b = greedy_shares(old, "base", split), greedy_shares(new, "base", split)
        shares[split] = {"accuracy_old": a["accuracy"], "accuracy_new": b["accuracy"], "n": b["n"],
                         "truncated": b["truncated"], "unclosed_thinking": b["unclosed_thinking"],
                         "parsed_when_truncated_old": sum(1 for r in old if r["model"] == "base" and r["split"] == split
                                                          and r["truncated"] and r["extracted"] is not None)}
    return shares


def cells() -> list[dict]:
    runs = list(csv.DictReader(open(RESULTS / "sweep_runs.csv")))
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        by[(r["effort"], int(r["size"]))].append(r)
    order = {"low": 0, "medium": 1, "high": 2}
    out = []
    for (effort, size), rs in sorted(by.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        out.append({"effort": effort, "size": size, "seeds": sorted(int(r["seed"]) for r in rs),
                    "test": mean(float(r["student_test_accuracy"]) for r in rs),
                    "ood": mean(float(r["student_ood_accuracy"]) for r in rs)})
    return out


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    teacher = _load("teacher_budget").measure(BUDGET, "smollm2_135m", [])
    t = {(r["effort"], r["split"]): r for r in teacher}
    base = base_evidence(teacher)
    col = _load("column_errors")
    errors = col.count(RESULTS / "base_eval" / "samples.jsonl", model="base", effort=None)
    lines = ["# effort_x_size (SmolLM2): what the committed evidence supports, regenerated 2026-12-03", "",
             "Written by `python experiments/effort_x_size/regenerate.py`. The 18 student runs' samples were not "
             "committed: their truncation shares are **not recoverable**. The teacher's answers are (the oracle "
             "is deterministic): the columns on the right give, per cell, the share of the teacher's own answers "
             f"that the study's budget of {BUDGET} new tokens cut (in SmolLM2's tokens, end of turn included), and "
             "so the highest accuracy a perfect student could have scored there.", "",
             f"| effort | size | seeds | student test % | student OOD % | truncated test / OOD | unclosed thinking "
             f"test / OOD | teacher's answers cut at {BUDGET}: test / OOD | a perfect student's ceiling OOD % (old "
             "parser / truncated = wrong) |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cells():
        tt, to = t[(c["effort"], "test")], t[(c["effort"], "ood")]
        mark = "🔴 " if tt["cut"] or to["cut"] else ""
        lines.append(f"| {mark}{c['effort']} | {c['size']} | {','.join(map(str, c['seeds']))} | {100 * c['test']:.1f} "
                     f"| {100 * c['ood']:.1f} | not recoverable | not recoverable | "
                     f"{tt['cut']}/{tt['answers']} / {to['cut']}/{to['answers']} "
                     f"| {100 * to['perfect_student_accuracy_old']:.1f} / {100 * to['perfect_student_accuracy']:.1f} |")
    lines += ["", "Student accuracies: the committed `sweep_runs.csv` (each run's metrics.json, mean of 2 seeds), scored "
              "before truncated outputs were set apart.", "", "## The teacher's answers against the budget", "",
              _load("teacher_budget").markdown(teacher, BUDGET, "smollm2_135m"),
              "## The base model, re-scored from its committed samples (`base_eval_rescored/`, report in "
              "`base_report/report.md`)", "",
              "| split | prompts | accuracy as committed | accuracy re-scored | truncated | unclosed thinking | "
              "truncated outputs the old reading parsed as a number |", "|---|---|---|---|---|---|---|"]
    for s, b in base.items():
        lines.append(f"| {s} | {b['n']} | {100 * b['accuracy_old']:.1f} % | {100 * b['accuracy_new']:.1f} % | "
                     f"{100 * b['truncated']:.1f} % | {100 * b['unclosed_thinking']:.1f} % | {b['parsed_when_truncated_old']} |")
    lines += ["", "## Error classes of the wrong answers in the committed samples (`column_errors.py`)", "",
              "Base model (its answers are prose, not the column format):", "", col.table(errors), "",
              "Student runs: not recoverable (samples not committed). The README's earlier '69 % misread an operand "
              "digit' cannot be rechecked, and the classifier that produced it counted a spurious carry as a misread "
              "digit and an omitted carry as no error (review, issue 23).", ""]
    (RESULTS / "evidence.md").write_text("\n".join(lines))
    (RESULTS / "evidence.json").write_text(json.dumps({"budget": BUDGET, "teacher": teacher, "base": base,
                                                       "base_errors": dict(errors), "cells": cells()}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
