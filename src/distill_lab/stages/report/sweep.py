"""Collect every run of a multirun directory (local or Slurm) and aggregate it over seeds.

``distill-lab report report.sweep_dir=multirun/pipeline/...`` lands here. A sweep directory is what
Hydra's ``-m`` writes: one job folder per run (``0/``, ``1/``, ...; submitit adds ``.submitit/``).
Each job folder holds a stage's ``manifest.json`` (its resolved config) and, for ``eval`` runs, a
``metrics.json``; a ``pipeline`` job keeps them in ``generate/``, ``train/``, ``eval/``.

Per run this reads, through the typed artifacts only: the swept parameters (``.hydra/overrides.yaml``),
the seed (the manifest), effort, dataset size, train rows and teacher cost (the dataset's
``dataset.json``, ``artifacts/dataset.py``), the student's / base's / teacher's accuracy and retention on
each split and category (``metrics.json`` as ``artifacts/metrics.EvalMetrics``), and the final train loss. Runs that did not
finish are listed with the reason, never silently dropped.

Aggregation: one cell per (effort, size) — or per combination of whatever else was swept — with the
mean over seeds and a Student-t confidence interval over seeds; cost per accuracy point where the
teacher was paid. Outputs: ``sweep_runs.csv``, ``sweep_summary.csv``, ``sweep.json``, ``sweep.md``
and plots ``accuracy_vs_size.png`` / ``retention_vs_size.png`` (one line per effort, CI bars).

Partial sweeps: the grid the sweep was launched with (``multirun.yaml``, ``report/grid.py``) is
compared with the runs on disk, and every job not yet finished is named, with the cells short of seeds.
Each run's config hash (without the seed and the swept keys) and git commit are listed; runs whose
other settings differ are named in the report, never averaged together silently.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from distill_lab.artifacts.dataset import DatasetInfo, DatasetInfoError
from distill_lab.artifacts.metrics import EvalMetrics, MetricsError
from distill_lab.stages.report.common import retention_by_category_plot, seed_cell
from distill_lab.stages.report.contrasts import contrasts_markdown, sweep_contrasts
from distill_lab.stages.report.families import (
    aggregate_families,
    families_markdown,
    run_contrasts,
    run_families,
)
from distill_lab.stages.report.grid import GridError, expected_grid, grid_status, missing_markdown
from distill_lab.stats import seed_interval
from distill_lab.vocab import HELD_OUT_SPLITS, effort_rank

log = logging.getLogger(__name__)

SPLITS = HELD_OUT_SPLITS


class SweepError(ValueError):
    """The sweep directory cannot be read; the message names the folder or file."""


# --------------------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One job of the sweep, flattened."""

    job: str
    path: str
    status: str = "ok"  # ok | missing
    reason: str | None = None
    stage: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # overrides of this job
    effort: str | None = None
    size: int | None = None
    train_rows: int | None = None
    seed: int | None = None
    teacher: str | None = None
    student: str | None = None
    # accuracy per model and split: {"student": {"test": 0.8, "ood": 0.2}, "base": ..., "teacher": ...}
    accuracy: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # the eval's bootstrap interval over prompts, per model and split (the per-run interval)
    accuracy_ci: dict[str, dict[str, list[float] | None]] = field(default_factory=dict)
    retention: dict[str, float | None] = field(default_factory=dict)  # student/teacher per split
    # per split and capability category: {"test": {"reasoning": {"student": .3, "teacher": 1., "retention": .3}}}
    categories: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    cost_usd: float | None = None
    train_loss: float | None = None
    train_tokens: float | None = None  # supervised tokens the training stepped over (train summary)
    wall_s: float | None = None
    # per split/family: {model}_accuracy, {model}_score, {model}_format (report/families.py); contrasts
    families: dict[str, dict[str, float | None]] = field(default_factory=dict)
    contrasts: dict[str, dict[str, float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # the resolved config (manifest)
    git_commit: str | None = None

    def flat(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items()
               if k not in ("params", "accuracy", "accuracy_ci", "retention", "categories", "config", "families",
                            "contrasts")}
        for k, v in self.params.items():
            out[f"param:{k}"] = v
        for model, by_split in self.accuracy.items():
            for split, v in by_split.items():
                out[f"{model}_{split}_accuracy"] = v
                ci = self.accuracy_ci.get(model, {}).get(split)
                if ci:
                    out[f"{model}_{split}_accuracy_ci"] = f"[{ci[0]:.4f}, {ci[1]:.4f}]"
        for split, v in self.retention.items():
            out[f"retention_{split}"] = v
        for split, cats in self.categories.items():
            for cat, vals in cats.items():
                out[f"retention_{split}_{cat}"] = vals.get("retention")
        for key, vals in self.families.items():
            for what in ("student_accuracy", "student_score", "student_format", "base_accuracy"):
                if vals.get(what) is not None:
                    out[f"{key}:{what}"] = vals[what]
        for name, diffs in self.contrasts.items():
            out[f"contrast:{name}:student"] = diffs.get("student")
        return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SweepError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from e


def _overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    out = {}
    for item in OmegaConf.to_container(OmegaConf.load(path)) or []:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key not in ("stage", "hydra.job.name") and not key.startswith("hydra."):
            out[key] = value
    return out


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _find(job_dir: Path, name: str) -> Path | None:
    """``name`` in the job folder itself or in a pipeline's sub-stage folder."""
    for sub in ("", "eval", "train", "generate", "report"):
        p = job_dir / sub / name if sub else job_dir / name
        if p.is_file():
            return p
    return None


def _train_summary(job_dir: Path, key: str) -> float | None:
    p = job_dir / "train" / "manifest.json"
    if not p.is_file():
        p = job_dir / "manifest.json"
        if not p.is_file():
            return None
    v = (_read_json(p).get("summary") or {}).get(key)  # what the train stage reports
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _train_loss(job_dir: Path) -> float | None:
    return _train_summary(job_dir, "final_loss")


def read_run(job_dir: Path) -> Run:
    """One job folder -> a ``Run`` (status ``missing`` with a reason when it has no metrics)."""
    job_dir = Path(job_dir)
    run = Run(job=job_dir.name, path=str(job_dir), params=_overrides(job_dir))
    manifest_path = job_dir / "manifest.json"
    manifest = _read_json(manifest_path) if manifest_path.is_file() else None
    cfg = _get(manifest, "config") or {}
    if not cfg:  # a job that died before its manifest: its composed config is in .hydra
        hydra_cfg = job_dir / ".hydra" / "config.yaml"
        if hydra_cfg.is_file():
            from omegaconf import OmegaConf

            try:
                cfg = OmegaConf.to_container(OmegaConf.load(hydra_cfg), resolve=False) or {}
            except Exception:  # noqa: BLE001 - an unreadable config still leaves the run listed
                cfg = {}
    run.stage = _get(manifest, "stage") or cfg.get("stage")
    run.seed = cfg.get("seed")
    run.student = _get(cfg, "student", "name")
    run.wall_s = _get(manifest, "timings_s", "total")
    run.config = cfg if manifest else {}
    run.git_commit = _get(manifest, "git", "commit")

    metrics_path = _find(job_dir, "metrics.json")
    try:
        metrics = EvalMetrics.load(metrics_path) if metrics_path else None
    except MetricsError as e:
        raise SweepError(str(e)) from None

    # effort / size / cost: the dataset's own record (dataset.json), found through the eval or train config
    dataset_dir = ((metrics.dataset_dir if metrics else None) or _get(cfg, "eval", "dataset_dir")
                   or _get(cfg, "train", "dataset_dir"))
    if not dataset_dir:  # a generate job's own dataset, or a pipeline's generate sub-stage's
        dataset_dir = _get(manifest, "artifacts", "dataset") or next(
            (str(d) for d in (job_dir / "dataset", job_dir / "generate" / "dataset") if d.is_dir()), None)
    try:
        info = DatasetInfo.load(dataset_dir)
    except DatasetInfoError as e:
        raise SweepError(str(e)) from None
    if info is not None:
        run.effort, run.size = info.effort, info.size
        run.teacher = f"{info.teacher_provider}/{info.teacher_model}"
        run.train_rows = info.rows.get("train")
        run.cost_usd = info.cost_usd
    else:  # a dataset made elsewhere (an import, an older version): what this job's config says
        run.effort, run.size = _get(cfg, "teacher", "effort"), _get(cfg, "recipe", "size")
        run.teacher = "/".join(str(x) for x in (_get(cfg, "teacher", "provider"), _get(cfg, "teacher", "model"))
                               if x)
    run.train_loss = _train_loss(job_dir)
    run.train_tokens = _train_summary(job_dir, "supervised_tokens")

    if metrics is None:
        run.status = "missing"
        run.reason = ("no metrics.json (the job did not reach eval)" if manifest or run.params
                      else "no manifest.json or metrics.json (the job did not finish)")
        return run
    for model in metrics.model_names():
        run.accuracy[model] = {s: metrics.accuracy(model, s) for s in SPLITS if metrics.block(model, s)}
        run.accuracy_ci[model] = {s: (metrics.block(model, s) or {}).get("accuracy_ci") for s in SPLITS
                                  if metrics.block(model, s)}
    for s in SPLITS:
        st = metrics.retention_stat("student", s)
        if st is not None:
            run.retention[s] = st["value"]
        for cat in metrics.categories(s):
            stat = metrics.retention_stat("student", s, cat)
            if stat is None:
                continue
            scored = metrics.retention_stat("student", s, cat, score=True)  # on the families' graded scores
            run.categories.setdefault(s, {})[cat] = {
                "student": metrics.accuracy("student", s, cat), "teacher": metrics.accuracy("teacher", s, cat),
                "base": metrics.accuracy("base", s, cat),
                "retention": stat["value"], "score_retention": scored["value"] if scored else None}
    run.families = run_families(metrics.models)
    run.contrasts = run_contrasts(run.families)
    if "student" not in run.accuracy:
        run.status, run.reason = "missing", f"{metrics_path}: no 'student' model in metrics"
    return run


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a multirun (numbered sub-folders, or any with a .hydra/ or manifest)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SweepError(f"report.sweep_dir: {sweep_dir} is not a directory")
    out = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
           and (p.name.isdigit() or (p / ".hydra").is_dir() or (p / "manifest.json").is_file())]
    if not out:
        raise SweepError(f"report.sweep_dir: {sweep_dir} holds no job folders (expected 0/, 1/, ... "
                         "as written by `distill-lab <stage> -m`)")
    return sorted(out, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def expected_jobs(sweep_dir: Path) -> int | None:
    """How many jobs the sweep launched, from submitit's folders (Slurm) when present."""
    sub = Path(sweep_dir) / ".submitit"
    if not sub.is_dir():
        return None
    # <array job>_<task index>: a re-run of the same sweep is a new array over the same task indices
    ids = {p.name.rpartition("_")[2] for p in sub.iterdir() if p.is_dir() and "_" in p.name}
    return len(ids) or None


def _drop(config: dict[str, Any], dotted: str) -> None:
    node = config
    *parents, last = dotted.split(".")
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(last, None)


def config_groups(runs: list[Run]) -> dict[str, list[str]]:
    """Finished runs grouped by the hash of their config without the seed and the swept keys: one group
    when every run shares its other settings (the only case whose cells may be compared)."""
    import copy

    from distill_lab.stages.resume import config_sha256

    ok = [r for r in runs if r.status == "ok" and r.config]
    swept = set(swept_keys(ok)) | {"seed"}
    groups: dict[str, list[str]] = defaultdict(list)
    for r in ok:
        cfg = copy.deepcopy(r.config)
        for k in swept:
            _drop(cfg, k)
        groups[config_sha256(cfg)[:12]].append(r.job)
    return dict(groups)


def collect(sweep_dir: str | Path) -> list[Run]:
    """Every run of a multirun directory."""
    return [read_run(d) for d in job_dirs(Path(sweep_dir))]


# --------------------------------------------------------------------------------- aggregation
def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value differs between runs (seed excluded). A key that some runs set and others
    leave at its default differs too (a later sitting that added an override is not pooled with the rest)."""
    keys = {k for r in runs for k in r.params}
    values: dict[str, set[str | None]] = {k: {r.params.get(k) for r in runs} for k in keys}
    return sorted(k for k, vs in values.items() if len(vs) > 1 and k != "seed")


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
        acc = _get(row, "student_test_accuracy", "mean")
        base = _get(row, "base_test_accuracy", "mean")
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


# ------------------------------------------------------------------------------------- outputs
def _fmt(cell: Any, pct: bool = True) -> str:
    if cell is None:
        return "–"
    if isinstance(cell, dict):
        m, ci = cell.get("mean"), cell.get("ci")
        if m is None:
            return "–"
        scale = 100 if pct else 1
        txt = f"{m * scale:.1f}"
        if ci:
            txt += f" [{ci[0] * scale:.1f}, {ci[1] * scale:.1f}]"
        return txt
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return str(cell)


def markdown(rows: list[dict[str, Any]], runs: list[Run], sweep_dir: Path, confidence: float,
             grid: Any = None, contrast_rows: list[dict[str, Any]] | None = None) -> str:
    other = [k for k in swept_keys([r for r in runs if r.status == "ok"])
             if k not in ("teacher.effort", "recipe.size")]
    cols = [("effort", "effort"), ("size", "size"), *[(k, k) for k in other], ("n_runs", "seeds"),
            ("student_test_accuracy", "student test %"), ("student_ood_accuracy", "student OOD %"),
            ("base_test_accuracy", "base test %"), ("teacher_test_accuracy", "teacher test %"),
            ("retention_test", "retention test %"), ("retention_ood", "retention OOD %")]
    if any(r.get("cost_per_point") is not None for r in rows):
        cols += [("cost_usd", "teacher $"), ("cost_per_point", "$ / acc. point"),
                 ("cost_per_gain_point", "$ / gained point")]
    if any(r.get("train_loss") is not None for r in rows):
        cols.append(("train_loss", "final train loss"))
    lines = [f"# Sweep report: {sweep_dir}", "",
             f"{sum(r.status == 'ok' for r in runs)} of {len(runs)} runs finished. Cells: mean over seeds "
             f"[{int(confidence * 100)}% Student-t interval over seeds, clipped to the possible range]; "
             "accuracies and retention in %.",
             "", "| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(k), pct=k not in ("cost_usd", "train_loss"))
                                       if k not in ("cost_per_point", "cost_per_gain_point")
                                       else _fmt(row.get(k)) for k, _ in cols) + " |")
    if any(row.get("categories") for row in rows):
        lines += ["", "## Retention by capability category (student / teacher)", "",
                  "Retention on score: the same ratio on the families' graded scores (for style_rules the voice, "
                  "for json_fields / sorted_words the content; per family below).", "",
                  "| effort | size | split | category | base % | student % | teacher % | retention % | "
                  "retention on score % | seed's figure |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in rows:
            for key, st in (row.get("categories") or {}).items():
                split, cat = key.split("/", 1)
                lines.append(f"| {row['effort']} | {row['size']} | {split} | {cat} | {_fmt(st.get('base'))} | "
                             f"{_fmt(st.get('student'))} | "
                             f"{_fmt(st.get('teacher'))} | {_fmt(st.get('retention'))} | "
                             f"{_fmt(st.get('score_retention'))} | {seed_cell(cat)} |")
    lines += families_markdown(rows, lambda row: ", ".join(
        f"{row.get(k)}" for k in ("effort", "size", *other) if row.get(k) is not None))
    lines += contrasts_markdown(contrast_rows or [], confidence)
    missing = [r for r in runs if r.status != "ok"]
    if missing:
        lines += ["", "## Runs without results", ""]
        lines += [f"- job `{r.job}` ({', '.join(f'{k}={v}' for k, v in r.params.items())}): {r.reason}"
                  for r in missing]
    if grid is not None:
        lines += ["", "## Sweep grid", "", *missing_markdown(grid)]
    groups = config_groups(runs)
    commits = sorted({r.git_commit[:10] for r in runs if r.status == "ok" and r.git_commit})
    if len(groups) > 1 or len(commits) > 1:
        lines += ["", "## Runs made with different settings", ""]
        if len(groups) > 1:
            lines.append("Finished runs differ in settings other than the seed and the swept keys (config hash "
                         "without them: jobs); compare cells only within one group:")
            lines += [f"- `{h}`: jobs {', '.join(jobs)}" for h, jobs in groups.items()]
        if len(commits) > 1:
            lines.append(f"Finished runs were made from {len(commits)} git commits: {', '.join(commits)} "
                         "(`git_commit` in sweep_runs.csv).")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], key_prefix: str, ylabel: str, path: Path, title: str,
         x: str = "size") -> Path | None:
    """``<prefix>_test`` and ``<prefix>_ood`` against ``x`` (the dataset size, or ``train_tokens``: the
    supervised tokens trained on, the fair axis when efforts make rows of different lengths), one line
    per effort, CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = [s for s in SPLITS if any(r.get(f"{key_prefix}_{s}" if key_prefix == "retention"
                                             else f"{key_prefix}_{s}_accuracy") for r in rows)]
    if not splits or not any(r.get(x) is not None for r in rows):
        return None
    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 4), squeeze=False)
    for ax, s in zip(axes[0], splits, strict=True):
        key = f"{key_prefix}_{s}" if key_prefix == "retention" else f"{key_prefix}_{s}_accuracy"
        by_effort: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r.get(key) and r[key]["mean"] is not None and r.get(x) is not None:
                by_effort[str(r["effort"])].append(r)
        for effort in sorted(by_effort, key=effort_rank):
            pts = sorted(by_effort[effort], key=lambda r: r[x])
            xs = [r[x] for r in pts]
            ys = [100 * r[key]["mean"] for r in pts]
            lo = [100 * (r[key]["mean"] - r[key]["ci"][0]) if r[key]["ci"] else 0 for r in pts]
            hi = [100 * (r[key]["ci"][1] - r[key]["mean"]) if r[key]["ci"] else 0 for r in pts]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=f"effort={effort}")
        ax.set_xscale("log")
        if x == "size":
            sizes = sorted({r["size"] for r in rows if r.get("size") is not None})
            ax.set_xticks(sizes, [str(v) for v in sizes])
            ax.minorticks_off()
        ax.set_xlabel("train prompts (recipe.size)" if x == "size" else "supervised tokens trained on")
        ax.set_ylabel(ylabel)
        ax.set_title({"test": "in-distribution (test)", "ood": "out-of-distribution (ood)"}[s])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def category_plots(rows: list[dict[str, Any]], out_dir: Path) -> list[str]:
    """Per cell with several capability categories: retention per category and split, mean over seeds with
    the seed interval, beside the seed's figures (``retention_by_category[_<cell>].png``)."""
    cells = [r for r in rows if len({k.split("/", 1)[1] for k in r.get("categories") or {}}) > 1]
    paths = []
    for row in cells:
        label = ", ".join(str(row[k]) for k in ("effort", "size") if row.get(k) is not None)
        safe = "".join(c if c.isalnum() else "_" for c in label)
        cats = row["categories"]

        def stat(split: str, cat: str, cats=cats):
            st = (cats.get(f"{split}/{cat}") or {}).get("retention")
            return (st["mean"], st["ci"]) if st and st.get("mean") is not None else None

        name = "retention_by_category.png" if len(cells) == 1 else f"retention_by_category_{safe}.png"
        splits = sorted({k.split("/", 1)[0] for k in cats}, key=lambda s: (s != "test", s))
        paths.append(str(retention_by_category_plot(
            {k.split("/", 1)[1] for k in cats}, splits, stat,
            f"retention per category ({label}; mean over {len(row['seeds'])} seeds, t-interval)", out_dir / name)))
    return paths


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
            w.writerow({k: (_get(v, "mean") if isinstance(v, dict) else v) for k, v in r.items()
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
                      _get(r, "student_test_accuracy", "mean"), _get(r, "student_ood_accuracy", "mean"),
                      _get(r, "retention_test", "mean"), _get(r, "retention_ood", "mean"), r.get("cost_usd")]
                     for r in res["rows"]]
            wl.log_table("sweep/summary", header, table)
            for key in ("accuracy_plot", "retention_plot"):
                if key in res["artifacts"]:
                    wl.log_image(f"sweep/{key}", res["artifacts"][key])
            wl.log_artifact(res["artifacts"]["sweep_md"], "sweep-report", "report")
    best = max((_get(r, "student_test_accuracy", "mean") or 0.0 for r in res["rows"]), default=None)
    print(f"distill-lab report: sweep of {res['summary']['runs']} runs -> {res['artifacts']['sweep_md']}")
    return StageResult(artifacts=res["artifacts"], summary=res["summary"], objective=best)
