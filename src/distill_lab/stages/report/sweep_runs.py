"""The runs of a multirun directory (local or Slurm), read through the typed artifacts only.

A sweep directory is what Hydra's ``-m`` writes: one job folder per run (``0/``, ``1/``, ...; submitit
adds ``.submitit/``). Each job folder holds a stage's ``manifest.json`` (its resolved config) and, for
``eval`` runs, a ``metrics.json``; a ``pipeline`` job keeps them in ``generate/``, ``train/``, ``eval/``.

Per run this reads the swept parameters (``.hydra/overrides.yaml``), the seed (the manifest), effort,
dataset size, train rows and teacher cost (the dataset's ``dataset.json``, ``artifacts/dataset.py``), the
student's / base's / teacher's accuracy and retention on each split and category (``metrics.json`` as
``artifacts/metrics.EvalMetrics``), and the final train loss. Runs that did not finish are kept with
status ``missing`` and the reason, never silently dropped. Each run's config hash (without the seed and
the swept keys) groups the runs whose other settings agree (``config_groups``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.dataset import DatasetInfo, DatasetInfoError
from distill_lab.artifacts.metrics import EvalMetrics, MetricsError
from distill_lab.stages.report.families import run_contrasts, run_families
from distill_lab.stages.report.grid import NOT_TREATMENTS, override_items
from distill_lab.vocab import HELD_OUT_SPLITS

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
    # training dose per family (the train summary's dose_per_family): {"addition": {"rows": 50, "supervised_tokens": ..}}
    dose: dict[str, dict[str, float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict, repr=False)  # the resolved config (manifest)
    git_commit: str | None = None
    dataset_dir: str | None = None  # the teacher rows this run trained on
    # what the run cost (artifacts/run_cost.RunCost.to_json(); report/costs.py): teacher USD paid or projected,
    # teacher tokens, supervised tokens, FLOPs estimate, wall time, machine
    cost: dict[str, Any] = field(default_factory=dict)
    # from the run's samples.jsonl (report/samples.attach_evidence): {"samples": path or None, "shares": {model:
    # {split: greedy_shares}}, "budgets": metrics' budgets, "truncation_allowed": bool, "budget_cut": [splits]}
    evidence: dict[str, Any] = field(default_factory=dict, repr=False)

    def flat(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items()
               if k not in ("params", "accuracy", "accuracy_ci", "retention", "categories", "config", "families",
                            "contrasts", "dose", "cost", "evidence")}
        for k, v in self.cost.items():
            if k not in ("supervised_tokens", "wall_s"):  # already columns (train_tokens, wall_s)
                out[k] = json.dumps(v) if isinstance(v, dict) else v
        for model, by_split in (self.evidence.get("shares") or {}).items():
            for split, sh in by_split.items():
                out[f"{model}_{split}_truncated"] = sh["truncated"]
                out[f"{model}_{split}_unclosed_thinking"] = sh["unclosed_thinking"]
        if self.evidence:
            out["samples"] = "yes" if self.evidence.get("samples") else "not recoverable (no samples.jsonl)"
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
        for fam, d in self.dose.items():
            out[f"dose:{fam}:rows"], out[f"dose:{fam}:supervised_tokens"] = d.get("rows"), d.get("supervised_tokens")
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

    return override_items(OmegaConf.to_container(OmegaConf.load(path)) or [])


def nested(d: dict[str, Any] | None, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where a key is missing or a level is not a dict."""
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


def train_dose(job_dir: Path) -> dict[str, dict[str, float]]:
    """The train summary's rows and supervised tokens per task family, of a pipeline job (its ``train/``) or a
    train run folder ({} where it has none)."""
    for p in (job_dir / "train" / "manifest.json", job_dir / "manifest.json"):
        if p.is_file():
            dose = (_read_json(p).get("summary") or {}).get("dose_per_family")
            return {str(f): {k: float(v) for k, v in d.items() if isinstance(v, int | float)}
                    for f, d in dose.items() if isinstance(d, dict)} if isinstance(dose, dict) else {}
    return {}


def _train_loss(job_dir: Path) -> float | None:
    return _train_summary(job_dir, "final_loss")


def read_run(job_dir: Path) -> Run:
    """One job folder -> a ``Run`` (status ``missing`` with a reason when it has no metrics)."""
    job_dir = Path(job_dir)
    run = Run(job=job_dir.name, path=str(job_dir), params=_overrides(job_dir))
    manifest_path = job_dir / "manifest.json"
    manifest = _read_json(manifest_path) if manifest_path.is_file() else None
    cfg = nested(manifest, "config") or {}
    if not cfg:  # a job that died before its manifest: its composed config is in .hydra
        hydra_cfg = job_dir / ".hydra" / "config.yaml"
        if hydra_cfg.is_file():
            from omegaconf import OmegaConf

            try:
                cfg = OmegaConf.to_container(OmegaConf.load(hydra_cfg), resolve=False) or {}
            except Exception:  # noqa: BLE001 - an unreadable config still leaves the run listed
                cfg = {}
    run.stage = nested(manifest, "stage") or cfg.get("stage")
    run.seed = cfg.get("seed")
    run.student = nested(cfg, "student", "name")
    run.wall_s = nested(manifest, "timings_s", "total")
    run.config = cfg if manifest else {}
    run.git_commit = nested(manifest, "git", "commit")

    metrics_path = _find(job_dir, "metrics.json")
    try:
        metrics = EvalMetrics.load(metrics_path) if metrics_path else None
    except MetricsError as e:
        raise SweepError(str(e)) from None

    # effort / size / cost: the dataset's own record (dataset.json), found through the eval or train config
    dataset_dir = ((metrics.dataset_dir if metrics else None) or nested(cfg, "eval", "dataset_dir")
                   or nested(cfg, "train", "dataset_dir"))
    if not dataset_dir:  # a generate job's own dataset, or a pipeline's generate sub-stage's
        dataset_dir = nested(manifest, "artifacts", "dataset") or next(
            (str(d) for d in (job_dir / "dataset", job_dir / "generate" / "dataset") if d.is_dir()), None)
    run.dataset_dir = str(dataset_dir) if dataset_dir else None
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
        run.effort, run.size = nested(cfg, "teacher", "effort"), nested(cfg, "recipe", "size")
        run.teacher = "/".join(str(x) for x in (nested(cfg, "teacher", "provider"), nested(cfg, "teacher", "model"))
                               if x)
    run.train_loss = _train_loss(job_dir)
    run.train_tokens = _train_summary(job_dir, "supervised_tokens")
    run.dose = train_dose(job_dir)

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
    swept = set(swept_keys(ok)) | {"seed", *NOT_TREATMENTS}
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


def other_swept(runs: list[Run]) -> list[str]:
    """The swept keys that name a cell beside effort and size (``cell_key``)."""
    return [k for k in swept_keys(runs) if k not in ("teacher.effort", "recipe.size")]


def cell_key(run: Run, other: list[str]) -> tuple:
    """A run's cell in every sweep table (means, evidence, votes, the design pilot): its effort, its size and
    its values of the ``other`` swept keys; the seeds of a cell are its replicates."""
    return (run.effort, run.size, tuple(run.params.get(k) for k in other))


def cell_label(key: tuple) -> str:
    """``cell_key`` as words: "high, 100, low@0.5+high@0.5" ("(one cell)" when nothing names it)."""
    effort, size, rest = key
    return ", ".join(str(x) for x in (effort, size, *rest) if x is not None) or "(one cell)"


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose value differs between runs (seed excluded). A key that some runs set and others
    leave at its default differs too (a later sitting that added an override is not pooled with the rest)."""
    keys = {k for r in runs for k in r.params}
    values: dict[str, set[str | None]] = {k: {r.params.get(k) for r in runs} for k in keys}
    return sorted(k for k, vs in values.items() if len(vs) > 1 and k != "seed" and k not in NOT_TREATMENTS)
