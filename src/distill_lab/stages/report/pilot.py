"""The design check's assumptions measured from a pilot sweep (``report.design_pilot``), not guessed.

``distill-lab report report.check_design=true experiment=<x> report.design_pilot=<pilot>`` reads a finished
sweep (a multirun folder, or its packed evidence ``samples.jsonl.gz``, loaded as ``report.sweep_dir`` loads
it: ``samples.unpack_evidence``, ``sweep_runs.collect``, ``samples.attach_evidence``) and measures, per split:

- seed SD: per cell (the sweep report's cells: effort, size and the other swept values; runs that differ
  only by seed), the sample SD over its seeds of the student's accuracy (its greedy answers, as the sweep
  report computes it); pooled over the cells with 2+ seeds: sqrt(sum (n_c - 1) s_c^2 / sum (n_c - 1));
- accuracy: the mean of the student's accuracy over the pilot's finished runs;
- prompt correlation: for every two cells that share a seed, the correlation of their per-prompt
  correctness (phi) at that seed over the prompts both answered, pooled over the pairs and seeds as one
  within-group Pearson correlation (each group centred on its own means, so a pair's different accuracies
  do not count as agreement); none when no two cells share a seed and prompts (the configured value then).

The rule (``design.run_check``): the measured values replace ``report.design_accuracy``,
``report.design_seed_sd`` and ``report.design_prompt_corr`` per split, unless one of them is set on the
command line, which then wins and is recorded as configured beside the measured value; a split the pilot
did not evaluate, and a correlation it cannot measure, keep the configured value, and the record says why.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from statistics import mean, stdev
from typing import Any

import numpy as np

from distill_lab.errors import ConfigError
from distill_lab.stages.report.samples import attach_evidence, is_packed, run_answers, unpack_evidence
from distill_lab.stages.report.sweep_runs import SweepError, cell_key, cell_label, collect, other_swept

KEY = "report.design_pilot"
FIELDS = {"accuracy": "report.design_accuracy", "seed_sd": "report.design_seed_sd",
          "prompt_corr": "report.design_prompt_corr"}


def measure(source: str | Path) -> dict[str, Any]:
    """What the pilot measured (module docstring); ConfigError naming ``report.design_pilot`` when the path is
    missing, holds no finished runs, or no cell with 2+ seeds."""
    if not Path(source).exists():
        raise ConfigError(f"{KEY}: {source} does not exist (a sweep folder, or its packed evidence samples.jsonl.gz)")
    try:
        if is_packed(source):
            with tempfile.TemporaryDirectory() as d:
                return _measure(unpack_evidence(source, Path(d) / "sweep"), str(source))
        return _measure(Path(source), str(source))
    except SweepError as e:
        raise ConfigError(f"{KEY}: {source}: {e}") from None


def _measure(sweep: Path, label: str) -> dict[str, Any]:
    ok = [r for r in collect(sweep) if r.status == "ok"]
    if not ok:
        raise ConfigError(f"{KEY}: {label} holds no finished runs (none has a student's metrics)")
    attach_evidence(ok)  # the student's accuracy from its greedy answers, as the sweep report reads it
    other = other_swept(ok)
    cells: dict[str, dict[Any, list[Any]]] = defaultdict(lambda: defaultdict(list))  # cell -> seed -> runs
    for r in ok:  # the sweep report's cells (sweep_stats.aggregate)
        cells[cell_label(cell_key(r, other))][r.seed].append(r)
    splits = sorted({s for r in ok for s in r.accuracy.get("student", {})}, key=lambda s: (s != "test", s))
    out_cells, per_split = [], {}
    for name, by_seed in cells.items():
        acc = {s: {seed: mean(v) for seed, rs in by_seed.items()  # a seed run twice: the mean of its runs
                   if (v := [r.accuracy["student"][s] for r in rs if r.accuracy["student"].get(s) is not None])}
               for s in splits}
        out_cells.append({"cell": name, "seeds": sorted(by_seed, key=str), "accuracy": acc,
                          "seed_sd": {s: stdev(a.values()) if len(a) > 1 else None for s, a in acc.items()}})
    if not any(len(c["seeds"]) > 1 for c in out_cells):
        raise ConfigError(f"{KEY}: {label} has no cell with 2+ seeds, so it measures no seed-to-seed SD (cells: "
                          + "; ".join(f"{c['cell']}: seed {', '.join(map(str, c['seeds']))}" for c in out_cells) + ")")
    answers = {r.path: run_answers(r.path) or {} for r in ok}
    for s in splits:
        multi = [(len(c["accuracy"][s]) - 1, c["seed_sd"][s]) for c in out_cells if c["seed_sd"][s] is not None]
        dof = sum(n for n, _ in multi)
        accs = [r.accuracy["student"][s] for r in ok if r.accuracy["student"].get(s) is not None]
        per_split[s] = {"accuracy": mean(accs), "runs": len(accs), "sd_cells": len(multi), "sd_df": dof,
                        "seed_sd": math.sqrt(sum(n * sd * sd for n, sd in multi) / dof) if dof else None,
                        **_correlation(cells, answers, s)}
    return {"source": label, "runs": len(ok), "cells": out_cells, "splits": per_split}


def _correlation(cells: dict[str, dict[Any, list[Any]]], answers: dict[str, Any], split: str) -> dict[str, Any]:
    """The pooled within-group correlation of per-prompt correctness between cells at a shared seed (hand-written:
    scipy's pearsonr has no pooled within-group form; centring each group first and correlating the lot is it)."""
    names = list(cells)
    xs, ys, pairs = [], [], set()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for seed in set(cells[a]) & set(cells[b]):
                pa, pb = (_correct(answers[cells[c][seed][0].path], split) for c in (a, b))
                ids = sorted(set(pa) & set(pb))
                if len(ids) > 1:
                    x, y = np.array([pa[k] for k in ids]), np.array([pb[k] for k in ids])
                    xs.append(x - x.mean())
                    ys.append(y - y.mean())
                    pairs.add((a, b))
    if not pairs:
        return {"prompt_corr": None, "corr_pairs": 0, "corr_points": 0,
                "corr_note": "no two cells share a seed and prompts"}
    x, y = np.concatenate(xs), np.concatenate(ys)
    den = math.sqrt(float(x @ x) * float(y @ y))
    if den == 0:
        return {"prompt_corr": None, "corr_pairs": len(pairs), "corr_points": len(x),
                "corr_note": "every prompt answered alike within a cell (no variation to correlate)"}
    return {"prompt_corr": float(x @ y) / den, "corr_pairs": len(pairs), "corr_points": len(x), "corr_note": None}


def _correct(ans: dict[tuple[str, str, str], tuple[str, float, float]], split: str) -> dict[str, float]:
    return {pid: c for (m, s, pid), (_, c, _) in ans.items() if m == "student" and s == split}


def assumptions(pilot: dict[str, Any], base: Any, explicit: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per split, ``base`` (a ``design.Assumptions``) with the pilot's measured values in place (the rule of the
    module docstring), and where each value came from."""
    by_split, sources = {}, {}
    src = f"measured from {pilot['source']}"
    for split, m in pilot["splits"].items():
        got, why = {}, {}
        measured = {"accuracy": (m["accuracy"], f"{src}: mean of {m['runs']} runs"),
                    "seed_sd": (m["seed_sd"], f"{src}: pooled over {m['sd_cells']} cells with 2+ seeds "
                                              f"({m['sd_df']} degrees of freedom)"),
                    "prompt_corr": (None if m["prompt_corr"] is None else max(0.0, m["prompt_corr"]),
                                    f"{src}: {m['corr_pairs']} pairs of cells at shared seeds, "
                                    f"{m['corr_points']} prompt answers"
                                    + (f" (measured {m['prompt_corr']:.3f}, used 0)"
                                       if (m["prompt_corr"] or 0) < 0 else ""))}
        for name, (value, text) in measured.items():
            configured = getattr(base, name)
            if FIELDS[name] in explicit:
                got[name], why[name] = configured, (f"configured ({FIELDS[name]} on the command line; the pilot "
                                                    f"measured {value if value is None else round(value, 4)})")
            elif value is None:
                note = m["corr_note"] if name == "prompt_corr" else f"no {split} cell with 2+ seeds"
                got[name], why[name] = configured, f"configured ({FIELDS[name]}): the pilot measured none ({note})"
            else:
                got[name], why[name] = value, text
        by_split[split], sources[split] = replace(base, **got), why
    return by_split, sources
