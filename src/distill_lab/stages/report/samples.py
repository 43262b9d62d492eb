"""Per-sample evidence: every run's ``samples.jsonl`` as records, the shares computed from them, and a
sweep packed into one compressed file that the report regenerates from.

Loading (what the sweep report and its statistics read):
- ``load_sweep_samples(source)`` -> ``{run: RunSamples}``: for each finished run of a sweep folder (or of a
  packed evidence file) its settings (effort, size, seed, swept parameters) and its per-sample records;
- ``normalize(record)`` fills what older ``samples.jsonl`` lack: ``family`` (= task), ``truncated``
  (= runaway), ``unclosed_thinking`` (= think_unclosed), ``outcome``, ``seed`` (from the run);
- ``greedy_shares(records, model, split)`` -> n, correct, accuracy and the shares of truncated outputs
  and of unclosed thinking, over the greedy outputs.

Packed evidence (``report.pack_evidence=<file>``): one gzip-compressed JSON-lines file holding a sweep's
small files verbatim (manifests, ``metrics.json``, ``dataset.json``, ``.hydra/*.yaml``, ``multirun.yaml``,
``launches/*.json``, the teacher's ``rows.jsonl``: no weights) and every sample record. Lines::

  {"type": "evidence", "version": 1, "sweep_dir": str, "runs": n, "runs_without_samples": [job, ...]}
  {"type": "file", "path": "<job>/eval/metrics.json", "text": str}   # the sweep folder's own path -> "@sweep"
  {"type": "run", "run": job, "path": "<job>/eval", "effort", "size", "seed", "params": {...}}
  {"type": "sample", "run": job, "record": {...one samples.jsonl line...}}

``report.sweep_dir=<that file>`` rebuilds the folder in a temporary directory (``unpack_evidence``) and
reports from it, so a study's report regenerates from its repository alone.

SFT+RL (``pipeline rl.enabled=true``): a pipeline job with an ``eval_rl/samples.jsonl`` beside its ``eval/``
contributes a second student. ``run_records`` reads its student's records as model ``student_rl``
(``RL_MODEL``) beside the SFT ``student`` of ``eval/`` (the base and teacher of ``eval_rl/`` answer the same
prompts as those of ``eval/`` and are read once, from ``eval/``); the pack holds it as a run line of its own
(``"run": "<job>/eval_rl"``), so the rebuilt folder has it where it was.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.artifacts.jsonio import read_jsonl
from distill_lab.stages.report.grid import LAUNCHES
from distill_lab.stages.report.sweep_runs import Run, SweepError, cell_key, collect

SAMPLES = "samples.jsonl"
RL_DIR = "eval_rl"  # a pipeline job's eval of its RL'd student (pipeline rl.enabled=true)
RL_MODEL = "student_rl"  # that student's records, as the reports read them
RL_LABEL = "SFT+RL"
PACK_VERSION = 1
SWEEP_TOKEN = "@sweep"
# the small files of a sweep that its report reads; heavy folders are never entered. The teacher's rows
# (generate/dataset/rows.jsonl) travel too: the dose, the teacher's answer lengths behind the eval budgets
# and the projected teacher cost (report.projected_price_model) are recomputed from them
PACKED_NAMES = {"manifest.json", "metrics.json", "dataset.json", "rows.jsonl", "overrides.yaml", "config.yaml",
                "hydra.yaml", "multirun.yaml"}
SKIP_DIRS = {"adapter", "merged", "gguf", "hf", "shards", "checkpoints", "wandb", "lightning_logs", ".submitit",
             "report", "plots"}
MAX_FILE_BYTES = 2_000_000


@dataclass
class RunSamples:
    """One run's per-sample records with the settings they were made under."""

    run: str  # the job folder's name
    path: str  # its samples.jsonl
    effort: str | None = None
    size: int | None = None
    seed: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)


def outcome(r: dict[str, Any]) -> str:
    if r.get("truncated"):
        return "truncated"
    if r.get("unclosed_thinking"):
        return "unclosed_thinking"
    return "correct" if r.get("correct") else "wrong"


def normalize(r: dict[str, Any], *, seed: int | None = None) -> dict[str, Any]:
    """A record with every field the reports read (older files: derived from the fields they have)."""
    r = dict(r)
    r.setdefault("family", r.get("task"))
    if "truncated" not in r:
        r["truncated"] = bool(r.get("runaway", False))
    if "unclosed_thinking" not in r:
        r["unclosed_thinking"] = bool(r.get("think_unclosed", False))
    if r.get("seed") is None:
        r["seed"] = seed
    r.setdefault("kind", "greedy")
    r.setdefault("outcome", outcome(r))
    return r


def read_samples(path: str | Path, *, seed: int | None = None) -> list[dict[str, Any]]:
    """The records of one ``samples.jsonl``; an unreadable line is an error naming the file and line."""
    return [normalize(r, seed=seed) for r in read_jsonl(Path(path), SweepError)]


def samples_path(job_dir: str | Path) -> Path | None:
    """``samples.jsonl`` of a job: its own, or its pipeline's eval sub-stage's."""
    for p in (Path(job_dir) / "eval" / SAMPLES, Path(job_dir) / SAMPLES):
        if p.is_file():
            return p
    return None


def rl_samples_path(job_dir: str | Path) -> Path | None:
    """``eval_rl/samples.jsonl`` of a pipeline job that ran ``rl`` (None otherwise)."""
    p = Path(job_dir) / RL_DIR / SAMPLES
    return p if p.is_file() and (Path(job_dir) / "eval" / SAMPLES).is_file() else None


def rl_records(path: str | Path, *, seed: int | None = None) -> list[dict[str, Any]]:
    """The student records of an ``eval_rl/samples.jsonl`` as model ``student_rl`` (its base and teacher left
    out: the SFT eval beside it holds them for the same prompts)."""
    return [{**r, "model": RL_MODEL} for r in read_samples(path, seed=seed) if r.get("model") == "student"]


def run_records(job_dir: str | Path, *, seed: int | None = None) -> list[dict[str, Any]] | None:
    """The normalised records of a job's (or an eval run's) ``samples.jsonl``, and of a pipeline job's
    ``eval_rl/`` (its student as ``student_rl``); None when it has none."""
    p = samples_path(job_dir)
    if p is None:
        return None
    rl = rl_samples_path(job_dir)
    return read_samples(p, seed=seed) + (rl_records(rl, seed=seed) if rl is not None else [])


def first_greedy(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The greedy answers (sample 0) of ``records``, normalised: the one answer per model and prompt the reports
    compare."""
    return [normalize(r) for r in records if r.get("kind", "greedy") == "greedy" and r.get("sample_index", 0) == 0]


def graded(r: dict[str, Any]) -> tuple[float, float]:
    """(correct 1.0 / 0.0, the family's graded score: correctness where the family grades none)."""
    c = float(bool(r["correct"]))
    return c, c if r.get("score") is None else float(r["score"])


# (model, split, prompt_id) -> (the prompt's category, correct 1.0 / 0.0, the family's graded score); the
# category is "" for a probe's control task (``tasks.is_control``): in split figures, never in a category's
Answers = dict[tuple[str, str, str], tuple[str, float, float]]


def answers(records: list[dict[str, Any]]) -> Answers:
    """The greedy answers of ``records`` per model, split and prompt (``contrasts``, ``sweep_stats``). A
    control's answers carry no category, so category figures and contrasts leave them out, as the eval's
    own metrics do (``evaluate/aggregate.py``)."""
    from distill_lab.tasks import is_control

    return {(r["model"], r["split"], r["prompt_id"]):
            ("" if is_control(r.get("task") or r.get("family")) else r.get("category") or "", *graded(r))
            for r in first_greedy(records)}


def run_answers(job_dir: str | Path) -> Answers | None:
    """The greedy answers of a job's (or an eval run's) samples; None when it kept none."""
    records = run_records(job_dir)
    if records is None:
        return None
    return answers(records) or None


# (model, split, family) -> prompt -> (correct, graded score, answer parsed: 1.0 / 0.0, NaN when not recorded,
# the item's pair_id: shared with its paired control's prompt, None when unpaired or not recorded)
FamilyAnswers = dict[tuple[str, str, str], dict[str, tuple[float, float, float, str | None]]]


def family_answers(records: list[dict[str, Any]]) -> FamilyAnswers:
    """The greedy answers of ``records`` per model, split and task family (records without a family left out)."""
    out: FamilyAnswers = {}
    for r in first_greedy(records):
        if r.get("family"):
            out.setdefault((r["model"], r["split"], r["family"]), {})[r["prompt_id"]] = (
                *graded(r), float(r.get("extracted") is not None) if "extracted" in r else float("nan"),
                r.get("pair_id"))
    return out


def is_packed(path: str | Path) -> bool:
    return str(path).endswith(".gz") and not Path(path).is_dir()


def load_run_samples(run: Run) -> RunSamples | None:
    """A collected run's samples (None when its samples.jsonl is missing)."""
    p = samples_path(run.path)
    if p is None:
        return None
    return RunSamples(run.job, str(p), run.effort, run.size, run.seed, dict(run.params),
                      run_records(run.path, seed=run.seed) or [])


def load_sweep_samples(source: str | Path) -> dict[str, RunSamples]:
    """``{job: RunSamples}`` for every finished run with samples, of a sweep folder or a packed evidence file."""
    if is_packed(source):
        with tempfile.TemporaryDirectory() as d:
            return load_sweep_samples(unpack_evidence(source, Path(d) / "sweep"))
    out = {}
    for run in collect(source):
        if run.status == "ok" and (rs := load_run_samples(run)) is not None:
            out[run.job] = rs
    return out


def greedy_shares(records: list[dict[str, Any]], model: str, split: str | None = None) -> dict[str, Any] | None:
    """Over ``model``'s greedy outputs (of ``split``): n, correct, accuracy, truncated and unclosed-thinking
    shares, and the count of each outcome; None when there are none."""
    rs = [normalize(r) for r in records if r.get("model") == model and r.get("kind", "greedy") == "greedy"
          and (split is None or r.get("split") == split)]
    if not rs:
        return None
    n = len(rs)
    outcomes: dict[str, int] = {}
    for r in rs:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {"n": n, "correct": sum(bool(r["correct"]) for r in rs),
            "accuracy": sum(bool(r["correct"]) for r in rs) / n,
            "truncated": sum(bool(r["truncated"]) for r in rs) / n,
            "unclosed_thinking": sum(bool(r["unclosed_thinking"]) for r in rs) / n,
            "truncated_n": sum(bool(r["truncated"]) for r in rs),
            "unclosed_thinking_n": sum(bool(r["unclosed_thinking"]) for r in rs), "outcomes": outcomes}


# ------------------------------------------------------------------------------------ packing
def _packable(sweep_dir: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(sweep_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            p = Path(root) / name
            launch = Path(root).name == LAUNCHES and name.endswith(".json")  # the grid's launches (report/grid.py)
            if (name in PACKED_NAMES or launch) and p.stat().st_size <= MAX_FILE_BYTES:
                out.append(p)
    return out


def _tokenize_paths(text: str, sweep_dir: Path, given: str) -> str:
    """The sweep folder's own path (absolute, and as given) -> ``@sweep``, so the pack is relocatable."""
    for form in sorted({str(sweep_dir.resolve()), given.rstrip("/")}, key=len, reverse=True):
        if form and form != ".":
            text = text.replace(form, SWEEP_TOKEN)
    return text


def pack_evidence(sweep_dir: str | Path, out_file: str | Path) -> dict[str, Any]:
    """Every finished run's samples and the sweep's small files -> one ``.jsonl.gz``; returns what it holds."""
    given, sweep_dir, out_file = str(sweep_dir), Path(sweep_dir), Path(out_file)
    if not str(out_file).endswith(".gz"):
        raise SweepError(f"report.pack_evidence: {out_file}: the packed evidence is a .jsonl.gz file")
    runs = [r for r in collect(sweep_dir) if r.status == "ok"]
    loaded = [(r, samples_path(r.path)) for r in runs]
    missing = [r.job for r, p in loaded if p is None]  # packed with their metrics only: "not recoverable"
    loaded = [(r, p) for r, p in loaded if p is not None]
    # a pipeline job's SFT+RL eval: a run line of its own, so the samples go back to <job>/eval_rl/
    loaded += [(r, rl) for r, _ in list(loaded) if (rl := rl_samples_path(r.path)) is not None]
    files = _packable(sweep_dir)
    n_samples = 0
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    # mtime=0: the same evidence packs to the same bytes (a study's commit changes only when its evidence does)
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        def line(d: dict[str, Any]) -> None:
            gz.write((json.dumps(d, ensure_ascii=False) + "\n").encode())

        line({"type": "evidence", "version": PACK_VERSION, "sweep_dir": given, "runs": len(runs),
              "runs_without_samples": missing})
        for f in files:
            line({"type": "file", "path": f.relative_to(sweep_dir).as_posix(),
                  "text": _tokenize_paths(f.read_text(), sweep_dir, given)})
        for r, p in loaded:
            assert p is not None
            key = r.job if p.parent.name != RL_DIR else f"{r.job}/{RL_DIR}"
            line({"type": "run", "run": key, "path": p.parent.relative_to(sweep_dir).as_posix(),
                  "effort": r.effort, "size": r.size, "seed": r.seed, "params": r.params})
            with open(p) as f:
                for raw_line in f:
                    if raw_line.strip():
                        line({"type": "sample", "run": key, "record": json.loads(raw_line)})
                        n_samples += 1
    os.replace(tmp, out_file)
    return {"file": str(out_file), "bytes": out_file.stat().st_size, "runs": len(runs), "samples": n_samples,
            "files": len(files), "runs_without_samples": missing}


def unpack_evidence(packed: str | Path, dest: str | Path) -> Path:
    """Rebuild the sweep folder of a packed evidence file under ``dest`` (small files and samples.jsonl)."""
    packed, dest = Path(packed), Path(dest)
    if not packed.is_file():
        raise SweepError(f"report.sweep_dir: no such packed evidence file {packed}")
    dest.mkdir(parents=True, exist_ok=True)
    root = str(dest.resolve())
    handles: dict[str, Any] = {}
    paths: dict[str, str] = {}
    seen_header = False
    try:
        with gzip.open(packed, "rt") as f:
            for lineno, text in enumerate(f, 1):
                try:
                    d = json.loads(text)
                except json.JSONDecodeError as e:
                    raise SweepError(f"{packed}:{lineno}: not valid JSON ({e.msg})") from None
                kind = d.get("type")
                if kind == "evidence":
                    if d.get("version") != PACK_VERSION:
                        raise SweepError(f"{packed}: packed evidence version {d.get('version')!r}; this version "
                                         f"reads {PACK_VERSION}")
                    seen_header = True
                elif not seen_header:
                    raise SweepError(f"{packed}: not packed evidence (no header line)")
                elif kind not in ("file", "run", "sample"):
                    raise SweepError(f"{packed}:{lineno}: unknown line type {kind!r} (file, run or sample)")
                elif not all(isinstance(d.get(k), str) for k in _PACK_FIELDS[kind]):
                    raise SweepError(f"{packed}:{lineno}: a {kind!r} line needs string fields "
                                     f"{', '.join(_PACK_FIELDS[kind])}")
                elif kind == "file":
                    target = _inside(dest, d["path"], packed)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(d["text"].replace(SWEEP_TOKEN, root))
                elif kind == "run":
                    paths[d["run"]] = d["path"]
                else:
                    run = d["run"]
                    if run not in paths:
                        raise SweepError(f"{packed}:{lineno}: a sample of run {run!r}, whose 'run' line does not "
                                         "come before it")
                    if run not in handles:
                        target = _inside(dest, f"{paths[run]}/{SAMPLES}", packed)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        handles[run] = open(target, "w")
                    handles[run].write(json.dumps(d["record"], ensure_ascii=False) + "\n")
    except (OSError, EOFError) as e:
        raise SweepError(f"{packed}: cannot read packed evidence ({e})") from None
    finally:
        for h in handles.values():
            h.close()
    return dest


_PACK_FIELDS = {"file": ("path", "text"), "run": ("run", "path"), "sample": ("run",)}


def _inside(dest: Path, rel: str, packed: Path) -> Path:
    target = (dest / rel).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise SweepError(f"{packed}: a packed path leaves the folder: {rel!r}")
    return target


# ------------------------------------------------------------------------------- the sweep report
def attach_evidence(runs: list[Run]) -> None:
    """Each finished run's figures from its samples: accuracy per model and split recomputed from the greedy
    outputs (replacing metrics.json's), the truncated and unclosed-thinking shares, and its budgets (from
    metrics.json: which splits ran with a budget below the teacher's answers)."""
    from distill_lab.artifacts.metrics import EvalMetrics

    for run in runs:
        if run.status != "ok":
            continue
        p = samples_path(run.path)
        ev: dict[str, Any] = {"samples": str(p) if p else None, "shares": {}}
        mp = p.parent / "metrics.json" if p else next(
            (q for q in (Path(run.path) / "eval" / "metrics.json", Path(run.path) / "metrics.json") if q.is_file()), None)
        if mp is not None and mp.is_file():
            m = EvalMetrics.load(mp)
            ev["budgets"] = m.extra.get("budgets")
            ev["truncation_allowed"] = bool(m.extra.get("truncation_allowed", False))
            ev["max_new_tokens"] = m.eval.get("max_new_tokens")
        ev["budget_cut"] = sorted(s for s, b in (ev.get("budgets") or {}).items() if b.get("below_teacher"))
        # why (students/budget.py): the budget is below the teacher's answers, and/or the teacher's API cut some
        ev["budget_api_cut"] = sorted(s for s, b in (ev.get("budgets") or {}).items()
                                      if b.get("below_teacher") and b.get("teacher_truncated"))
        ev["budget_below"] = sorted(s for s, b in (ev.get("budgets") or {}).items() if b.get("below_teacher") and (
            not b.get("teacher_truncated") or (b.get("teacher_longest") or 0) > b.get("max_new_tokens", 0)))
        if p is not None:
            records = run_records(run.path, seed=run.seed) or []
            for model in sorted({r.get("model") for r in records if r.get("model")}):
                for split in sorted({r.get("split") for r in records if r.get("model") == model}):
                    sh = greedy_shares(records, model, split)
                    if sh is not None:
                        ev["shares"].setdefault(model, {})[split] = sh
                        run.accuracy.setdefault(model, {})[split] = sh["accuracy"]
            for split, sh in ev["shares"].get("student", {}).items():  # retention = student / teacher, per split
                t = ev["shares"].get("teacher", {}).get(split)
                if t is not None:
                    run.retention[split] = sh["accuracy"] / t["accuracy"] if t["accuracy"] else None
        run.evidence = ev


def cell_evidence(rows: list[dict[str, Any]], runs: list[Run], other: list[str]) -> None:
    """Per cell (the rows of ``sweep_stats.aggregate``), pooled over its runs' greedy outputs: the shares of
    truncated outputs and of unclosed thinking per model and split (``{model}_{split}_truncated`` /
    ``_unclosed_thinking`` as ``{"mean": share, "n": outputs}``), ``samples`` (runs with samples of all),
    and ``budget_cut`` (splits some run evaluated with a budget below the teacher's answers)."""
    for row in rows:
        key = (row.get("effort"), row.get("size"), tuple(row.get(k) for k in other))
        rs = [r for r in runs if r.status == "ok" and cell_key(r, other) == key]
        with_samples = [r for r in rs if r.evidence.get("samples")]
        row["samples"] = f"{len(with_samples)}/{len(rs)}"
        row["budget_cut"] = sorted({s for r in rs for s in r.evidence.get("budget_cut", [])})
        for why in ("budget_api_cut", "budget_below"):
            row[why] = sorted({s for r in rs for s in r.evidence.get(why, [])})
        budgets = {s: sorted({b.get("max_new_tokens") for r in rs for sp, b in (r.evidence.get("budgets") or {}).items()
                              if sp == s}) for s in ("test", "ood")}
        row["max_new_tokens"] = {s: v for s, v in budgets.items() if v} or sorted(
            {str(r.evidence.get("max_new_tokens")) for r in rs if r.evidence.get("max_new_tokens") is not None})
        for model in ("student", RL_MODEL, "base", "teacher"):
            for split in ("test", "ood"):
                shs = [r.evidence["shares"][model][split] for r in with_samples
                       if split in r.evidence.get("shares", {}).get(model, {})]
                if not shs:
                    continue
                n = sum(sh["n"] for sh in shs)
                for what in ("truncated", "unclosed_thinking"):
                    row[f"{model}_{split}_{what}"] = {"mean": sum(sh[f"{what}_n"] for sh in shs) / n, "ci": None,
                                                      "n": n}
