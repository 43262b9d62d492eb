"""The sweep report: collect every run of a multirun directory (local or Slurm), aggregate it over seeds
and write the outputs.

``distill-lab report report.sweep_dir=multirun/pipeline/...`` lands here. The concerns live apart:
reading the runs (``sweep_runs.py``), aggregating them over seeds (``sweep_stats.py``), rendering
``sweep.md`` (``sweep_markdown.py``, tables through ``tables.py``) and the charts (``sweep_plots.py``);
this module writes them: ``sweep_runs.csv``, ``sweep_summary.csv``, ``sweep.json``, ``sweep.md`` and
plots ``accuracy_vs_size.png`` / ``retention_vs_size.png`` (one line per effort, CI bars).

Partial sweeps: the grid the sweep was launched with (``multirun.yaml``, ``report/grid.py``) is
compared with the runs on disk, and every job not yet finished is named, with the cells short of seeds.
Each run's config hash (without the seed and the swept keys) and git commit are listed; runs whose
other settings differ are named in the report, never averaged together silently.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from distill_lab.stages.report.contrasts import sweep_contrasts
from distill_lab.stages.report.grid import GridError, expected_grid, grid_status
from distill_lab.stages.report.sweep_markdown import markdown
from distill_lab.stages.report.sweep_plots import category_plots, plot
from distill_lab.stages.report.sweep_runs import (
    SweepError,
    collect,
    config_groups,
    expected_jobs,
    nested,
    swept_keys,
)
from distill_lab.stages.report.sweep_stats import aggregate

# what callers imported from this module before the split (tests, other stages' code)
__all__ = ["SweepError", "aggregate", "collect", "config_groups", "expected_jobs", "run_report", "write_report"]


def write_report(sweep_dir: str | Path, out_dir: str | Path, confidence: float = 0.95) -> dict[str, Any]:
    """Collect, aggregate and write every output; returns the artifact paths and a summary."""
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = collect(sweep_dir)
    rows = aggregate(runs, confidence)
    contrast_rows = sweep_contrasts(runs, swept_keys([r for r in runs if r.status == "ok"]), confidence)
    try:
        grid_jobs = expected_grid(sweep_dir)
    except GridError as e:
        raise SweepError(str(e)) from None
    grid = grid_status(grid_jobs, runs) if grid_jobs is not None else None
    expected = grid.expected if grid is not None else expected_jobs(sweep_dir)

    flat = [r.flat() for r in runs]
    fields = sorted({k for f in flat for k in f}, key=lambda k: (k.startswith("param:"), k))
    with (out_dir / "sweep_runs.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(flat)
    summary_fields = sorted({k for r in rows for k in r if k not in ("categories", "families", "contrasts")})
    with (out_dir / "sweep_summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=summary_fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (nested(v, "mean") if isinstance(v, dict) else v) for k, v in r.items()
                        if k not in ("categories", "families", "contrasts")})
    data = {"sweep_dir": str(sweep_dir), "confidence": confidence, "expected_jobs": expected,
            "runs": [{k: v for k, v in asdict(r).items() if k != "config"} for r in runs], "cells": rows,
            "grid": asdict(grid) if grid is not None else None, "config_groups": config_groups(runs),
            "contrasts": contrast_rows}
    (out_dir / "sweep.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (out_dir / "sweep.md").write_text(markdown(rows, runs, sweep_dir, confidence, grid, contrast_rows))
    artifacts = {"sweep_md": str(out_dir / "sweep.md"), "sweep_json": str(out_dir / "sweep.json"),
                 "sweep_runs_csv": str(out_dir / "sweep_runs.csv"),
                 "sweep_summary_csv": str(out_dir / "sweep_summary.csv")}
    p = plot(rows, "student", "student accuracy (%)", out_dir / "accuracy_vs_size.png",
             "Student accuracy vs dataset size (mean over seeds, CI bars)")
    if p:
        artifacts["accuracy_plot"] = str(p)
    if len({r.get("effort") for r in rows}) > 1:  # efforts differ in row length: also per training token
        p = plot(rows, "student", "student accuracy (%)", out_dir / "accuracy_vs_tokens.png",
                 "Student accuracy vs supervised training tokens (mean over seeds, CI bars)", x="train_tokens")
        if p:
            artifacts["accuracy_tokens_plot"] = str(p)
    p = plot(rows, "retention", "retention = student / teacher (%)", out_dir / "retention_vs_size.png",
             "Retention vs dataset size (mean over seeds, CI bars)")
    if p:
        artifacts["retention_plot"] = str(p)
    by_cat = category_plots(rows, out_dir)
    if by_cat:
        artifacts["category_plots"] = by_cat
    summary = {"runs": len(runs), "finished": sum(r.status == "ok" for r in runs), "expected_jobs": expected,
               "cells": len(rows), "missing_jobs": len(grid.missing_jobs) if grid is not None else None}
    return {"artifacts": artifacts, "summary": summary, "rows": rows, "runs": runs}


def run_report(cfg, run_dir: Path):
    """The ``report`` stage with ``report.sweep_dir`` set: a StageResult for ``stage.run_stage``."""
    from distill_lab.stages.common import StageResult
    from distill_lab.tracking.loggers import open_run

    out_dir = Path(cfg.report.output_dir or run_dir)
    res = write_report(cfg.report.sweep_dir, out_dir, confidence=cfg.eval.confidence)
    with open_run(cfg, "report", run_dir) as wl:
        if wl.enabled:
            header = ["effort", "size", "n_runs", "student_test", "student_ood", "retention_test",
                      "retention_ood", "cost_usd"]
            table = [[r.get("effort"), r.get("size"), r.get("n_runs"),
                      nested(r, "student_test_accuracy", "mean"), nested(r, "student_ood_accuracy", "mean"),
                      nested(r, "retention_test", "mean"), nested(r, "retention_ood", "mean"), r.get("cost_usd")]
                     for r in res["rows"]]
            wl.log_table("sweep/summary", header, table)
            for key in ("accuracy_plot", "retention_plot"):
                if key in res["artifacts"]:
                    wl.log_image(f"sweep/{key}", res["artifacts"][key])
            wl.log_artifact(res["artifacts"]["sweep_md"], "sweep-report", "report")
    best = max((nested(r, "student_test_accuracy", "mean") or 0.0 for r in res["rows"]), default=None)
    print(f"distill-lab report: sweep of {res['summary']['runs']} runs -> {res['artifacts']['sweep_md']}")
    return StageResult(artifacts=res["artifacts"], summary=res["summary"], objective=best)
