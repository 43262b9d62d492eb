"""A sweep's runs aggregated over seeds: one cell per (effort, size), or per combination of whatever else
was swept, with the mean over seeds and a Student-t confidence interval over seeds (``stats.seed_interval``,
clipped to the possible range), and cost per accuracy point where the teacher was paid."""

from __future__ import annotations

from collections import defaultdict
from statistics import mean
from typing import Any

from distill_lab.stages.report.families import aggregate_families
from distill_lab.stages.report.sweep_runs import SPLITS, Run, nested, swept_keys
from distill_lab.stats import seed_interval
from distill_lab.vocab import effort_rank


def aggregate(runs: list[Run], confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per (effort, size, other swept values): means and t-intervals over seeds."""
    ok = [r for r in runs if r.status == "ok"]
    other = [k for k in swept_keys(ok) if k not in ("teacher.effort", "recipe.size")]
    cells: dict[tuple, list[Run]] = defaultdict(list)
    for r in ok:
        cells[(r.effort, r.size, tuple(r.params.get(k) for k in other))].append(r)
    rows = []
    for (effort, size, rest), rs in sorted(cells.items(), key=lambda kv: (effort_rank(kv[0][0]),
                                                                          kv[0][1] or 0,
                                                                          tuple(v or "" for v in kv[0][2]))):
        row: dict[str, Any] = {"effort": effort, "size": size, **dict(zip(other, rest, strict=True)),
                               "seeds": sorted(r.seed for r in rs if r.seed is not None), "n_runs": len(rs)}
        for model in ("student", "base", "teacher"):
            for s in SPLITS:
                vals = [r.accuracy.get(model, {}).get(s) for r in rs]
                vals = [v for v in vals if v is not None]
                if vals:
                    row[f"{model}_{s}_accuracy"] = seed_interval(vals, confidence, 0.0, 1.0)
        for s in SPLITS:
            vals = [r.retention.get(s) for r in rs if r.retention.get(s) is not None]
            if vals:
                row[f"retention_{s}"] = seed_interval(vals, confidence)
        cats: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rs:
            for s, by_cat in r.categories.items():
                for cat, vals in by_cat.items():
                    for what, v in vals.items():
                        if v is not None:
                            cats[f"{s}/{cat}"][what].append(v)
        if cats:
            row["categories"] = {k: {what: seed_interval(v, confidence, 0.0, None if what.endswith("retention") else 1.0)
                                     for what, v in d.items()}
                                 for k, d in sorted(cats.items())}
        costs = [r.cost_usd for r in rs if r.cost_usd is not None]
        row["cost_usd"] = mean(costs) if costs else None
        acc = nested(row, "student_test_accuracy", "mean")
        base = nested(row, "base_test_accuracy", "mean")
        paid = row["cost_usd"] is not None and row["cost_usd"] > 0
        row["cost_per_point"] = row["cost_usd"] / (100 * acc) if paid and acc else None
        gain = (acc - base) if acc is not None and base is not None else None
        row["cost_per_gain_point"] = row["cost_usd"] / (100 * gain) if paid and gain and gain > 0 else None
        losses = [r.train_loss for r in rs if r.train_loss is not None]
        row["train_loss"] = mean(losses) if losses else None
        tokens = [r.train_tokens for r in rs if r.train_tokens is not None]
        row["train_tokens"] = mean(tokens) if tokens else None
        fam = aggregate_families(rs, lambda v, lo, hi: seed_interval(v, confidence, lo, hi))
        row.update({k: v for k, v in fam.items() if v})
        rows.append(row)
    return rows
