"""The sweep report: collect every run of a multirun directory (local or Slurm), aggregate it over seeds
and write the outputs.

``distill-lab report report.sweep_dir=multirun/pipeline/...`` lands here. The concerns live apart:
reading the runs (``sweep_runs.py``), aggregating them over seeds (``sweep_stats.py``), rendering
``sweep.md`` (``sweep_markdown.py``, tables through ``tables.py``) and the charts (``sweep_plots.py``);
this module writes them: ``sweep_runs.csv``, ``sweep_summary.csv``, ``sweep.json``, ``sweep.md`` and
plots ``accuracy_vs_size.png`` / ``retention_vs_size.png`` (one line per effort, CI bars). What each run
cost (``costs.py``) and the Pareto frontiers of accuracy vs teacher USD and vs training tokens
(``frontier.py``) add a section to ``sweep.md`` and ``frontier_*.png``; ``report.wandb_report=true`` builds
the sweep's W&B Report (``wandb_report.py``).

Partial sweeps: the grid the sweep was launched with (its recorded launches, or ``multirun.yaml``: ``report/grid.py``) is
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
from distill_lab.stages.report.costs import CostError, run_cost
from distill_lab.stages.report.frontier import cost_report
from distill_lab.stages.report.grid import GridError, expected_grid, grid_source, grid_status
from distill_lab.stages.report.samples import (
    RL_MODEL,
    attach_evidence,
    cell_evidence,
    is_packed,
    pack_evidence,
    unpack_evidence,
)
from distill_lab.stages.report.sweep_markdown import markdown
from distill_lab.stages.report.sweep_plots import category_plots, plot
from distill_lab.stages.report.sweep_runs import (
    SweepError,
    collect,
    config_groups,
    expected_jobs,
    nested,
    other_swept,
    swept_keys,
)
from distill_lab.stages.report.sweep_stats import aggregate
from distill_lab.stages.report.vote import seed_votes, seed_votes_markdown

# what callers imported from this module before the split (tests, other stages' code)
__all__ = ["SweepError", "aggregate", "collect", "config_groups", "expected_jobs", "pack_evidence", "run_report",
           "write_report"]


def write_report(sweep_dir: str | Path, out_dir: str | Path, confidence: float = 0.95, *,
                 price_model: str | None = None, chars_per_token: float = 4.0,
                 frontier_points: float = 5.0, vote_over: str | None = None,
                 baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect, aggregate and write every output; returns the artifact paths and a summary. ``sweep_dir``
    may be a packed evidence file (``report/samples.py``): the report is then made from it alone.
    ``price_model`` projects an unpaid teacher's spend at that model's list prices (report/costs.py).
    ``vote_over="seed"``: also the vote of each cell's seeds' students; ``"stage"``: of each cell's SFT and
    SFT+RL students together (``report/vote.py``). ``baseline``: the control arm's swept settings (None: the
    setting not given); every other cell is contrasted with it (``report/contrasts.py``)."""
    kw = dict(price_model=price_model, chars_per_token=chars_per_token, frontier_points=frontier_points,
              vote_over=vote_over, baseline=baseline)
    if is_packed(sweep_dir):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            return _write_report(unpack_evidence(sweep_dir, Path(d) / "sweep"), Path(out_dir), confidence,
                                 label=Path(sweep_dir), **kw)
    return _write_report(Path(sweep_dir), Path(out_dir), confidence, **kw)


def _write_report(sweep_dir: Path, out_dir: Path, confidence: float, label: Path | None = None, *,
                  price_model: str | None, chars_per_token: float, frontier_points: float,
                  vote_over: str | None, baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    runs = collect(sweep_dir)
    for r in runs:  # each run's cost record, before anything is written (a bad price model fails here)
        if r.status == "ok":
            try:
                r.cost = run_cost(Path(r.path), r.dataset_dir, r.cost_usd, price_model=price_model,
                                  chars_per_token=chars_per_token).to_json()
            except CostError as e:
                raise SweepError(str(e)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    attach_evidence(runs)  # accuracies and truncation shares from each run's samples.jsonl
    rows = aggregate(runs, confidence)
    cell_evidence(rows, runs, other_swept([r for r in runs if r.status == "ok"]))
    contrast_rows = sweep_contrasts(runs, swept_keys([r for r in runs if r.status == "ok"]), confidence,
                                    baseline=baseline)
    try:
        grid_jobs = expected_grid(sweep_dir)
    except GridError as e:
        raise SweepError(str(e)) from None
    grid = grid_status(grid_jobs, runs, grid_source(sweep_dir)) if grid_jobs is not None else None
    expected = grid.expected if grid is not None else expected_jobs(sweep_dir)

    flat = [r.flat() for r in runs]
    fields = sorted({k for f in flat for k in f}, key=lambda k: (k.startswith("param:"), k))
    with (out_dir / "sweep_runs.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(flat)
    summary_fields = sorted({k for r in rows for k in r if k not in ("categories", "families", "contrasts", "dose")})
    with (out_dir / "sweep_summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=summary_fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (nested(v, "mean") if isinstance(v, dict) else v) for k, v in r.items()
                        if k not in ("categories", "families", "contrasts", "dose")})
    data = {"sweep_dir": str(label or sweep_dir), "confidence": confidence, "expected_jobs": expected,
            "runs": [{k: v for k, v in asdict(r).items() if k != "config"} for r in runs], "cells": rows,
            "grid": asdict(grid) if grid is not None else None, "config_groups": config_groups(runs),
            "contrasts": contrast_rows}
    other = [k for k in swept_keys([r for r in runs if r.status == "ok"]) if k not in ("teacher.effort", "recipe.size")]
    cost_lines, cost_plots, fronts = cost_report(rows, other, out_dir, frontier_points)
    data["frontiers"] = fronts
    md = markdown(rows, runs, label or sweep_dir, confidence, grid, contrast_rows)
    if vote_over in ("seed", "stage"):
        data["votes"] = seed_votes(runs, other, confidence, over=vote_over)
        md += "\n".join(seed_votes_markdown(data["votes"], over=vote_over)) + "\n"
    (out_dir / "sweep.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (out_dir / "sweep.md").write_text(md + ("\n".join(cost_lines) + "\n" if cost_lines else ""))
    artifacts = {**cost_plots, "sweep_md": str(out_dir / "sweep.md"), "sweep_json": str(out_dir / "sweep.json"),
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
    return {"artifacts": artifacts, "summary": summary, "rows": rows, "runs": runs, "frontiers": fronts,
            "other_keys": other}


def run_report(cfg, run_dir: Path):
    """The ``report`` stage with ``report.sweep_dir`` set: a StageResult for ``stage.run_stage``."""
    from distill_lab.stages.common import StageResult
    from distill_lab.tracking.loggers import open_run

    rc = cfg.report
    out_dir = Path(rc.output_dir or run_dir)
    packed = None
    if rc.pack_evidence:  # the per-sample evidence of the sweep, in one compressed file
        packed = pack_evidence(rc.sweep_dir, rc.pack_evidence)
        print(f"distill-lab report: packed {packed['samples']} samples of {packed['runs']} runs and "
              f"{packed['files']} files into {packed['file']} ({packed['bytes'] / 1024:.0f} KiB)"
              + (f"; runs without samples (metrics only): {', '.join(packed['runs_without_samples'])}"
                 if packed["runs_without_samples"] else ""))
    group = None
    if rc.wandb_report:  # checked before anything is written
        from distill_lab.errors import ConfigError
        from distill_lab.stages.report import wandb_report

        if cfg.logger.name != "wandb":
            raise ConfigError("report.wandb_report: needs logger=wandb (the report's tables go to a W&B run in the "
                              "sweep's group, which the Report's panels read)")
        try:
            group = wandb_report.sweep_group(cfg.logger.group, wandb_report.logged_runs([Path(rc.sweep_dir)]),
                                             Path(rc.sweep_dir))
        except wandb_report.WandbReportError as e:
            raise ConfigError(str(e)) from None
    res = write_report(rc.sweep_dir, out_dir, confidence=cfg.eval.confidence, price_model=rc.projected_price_model,
                       chars_per_token=rc.projected_chars_per_token, frontier_points=rc.frontier_points,
                       vote_over=rc.vote_over,
                       baseline=dict(b.split("=", 1) for b in rc.baseline) if rc.baseline else None)
    if packed is not None:
        res["artifacts"]["evidence"] = packed["file"]
        res["summary"]["evidence_bytes"] = packed["bytes"]
    with open_run(cfg, "report", run_dir, group=group) as wl:
        if wl.enabled and rc.wandb_report:  # what the W&B Report's panels read
            for key, (cols, table) in wandb_report.sweep_tables(res).items():
                wl.log_table(key, cols, table)
        if wl.enabled:
            header = ["effort", "size", "n_runs", "student_test", "student_ood", "retention_test",
                      "retention_ood", "cost_usd"]
            table = [[r.get("effort"), r.get("size"), r.get("n_runs"),
                      nested(r, "student_test_accuracy", "mean"), nested(r, "student_ood_accuracy", "mean"),
                      nested(r, "retention_test", "mean"), nested(r, "retention_ood", "mean"), r.get("cost_usd")]
                     for r in res["rows"]]
            if any(r.get(f"{RL_MODEL}_{s}_accuracy") for r in res["rows"] for s in ("test", "ood")):  # SFT+RL arm
                header += ["student_rl_test", "student_rl_ood", "student_rl_retention_test", "student_rl_retention_ood"]
                for line, r in zip(table, res["rows"], strict=True):
                    line += [nested(r, f"{RL_MODEL}_{k}", "mean") for k in ("test_accuracy", "ood_accuracy",
                                                                            "retention_test", "retention_ood")]
            wl.log_table("sweep/summary", header, table)
            for key in ("accuracy_plot", "retention_plot", "frontier_teacher_usd_plot", "frontier_train_tokens_plot"):
                if key in res["artifacts"]:
                    wl.log_image(f"sweep/{key}", res["artifacts"][key])
            wl.log_artifact(res["artifacts"]["sweep_md"], "sweep-report", "report")
    if rc.wandb_report:
        res["artifacts"].update(wandb_report.run_for_sweep(cfg, res, group, [Path(rc.sweep_dir), Path(run_dir)],
                                                           out_dir))
    best = max((nested(r, "student_test_accuracy", "mean") or 0.0 for r in res["rows"]), default=None)
    print(f"distill-lab report: sweep of {res['summary']['runs']} runs -> {res['artifacts']['sweep_md']}")
    return StageResult(artifacts=res["artifacts"], summary=res["summary"], objective=best)
