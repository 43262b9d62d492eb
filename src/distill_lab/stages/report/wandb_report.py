"""A W&B Report built from a sweep, through W&B's Reports API (the ``wandb-workspaces`` library).

``distill-lab report report.sweep_dir=... report.wandb_report=true logger=wandb`` logs the sweep's tables
(``sweep/cells``, ``sweep/categories``, ``sweep/runs``, ``sweep/frontier*``) to a ``report`` run in the
sweep's W&B group, then builds a Report: the title, the study's question and method as text, and panel
grids whose run sets are filtered to the sweep's group (and a job type): accuracy vs dataset size (one
line per effort, with the interval's bounds as lines), retention by category, accuracy vs teacher USD and
vs training tokens with the Pareto frontier's table, per-run training curves, and the runs table.

Every key a panel names is checked before anything is written: against the runs' own W&B record logs on
disk (``run-*.wandb`` under the sweep and the report run: written by offline AND online runs, read by
``tracking/wandb_reader.py``), with an error naming the key, the job type and the group.

Offline (the default): ``report/wandb_report.json`` holds the library's own serialised model of the
report (``ReportViewspec.model_dump``: what ``Report.save()`` sends as the view's spec), and the stage says
how to publish it: ``distill-lab report report.publish_file=<file>`` wherever a W&B key is configured
(``WANDB_API_KEY`` or ``wandb login``; ``WANDB_BASE_URL`` for a private server), or ``report.publish=true``
in the same run. Run sets are stored without entity/project and get the report's at publish time, when the
library looks the project up.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.errors import ConfigError
from distill_lab.exit_codes import StageStop
from distill_lab.stages.report.samples import RL_MODEL
from distill_lab.tracking.wandb_reader import find_runs, read_run, read_table

log = logging.getLogger(__name__)

REPORT_FILE = "wandb_report.json"
FORMAT = "distill_lab W&B report spec: wandb-workspaces ReportViewspec"


class WandbReportError(StageStop):
    """The report cannot be built or published; the message names the key, run, group or URL (exit 3, one
    line, no traceback)."""


# -------------------------------------------------------------------------------- logged keys
@dataclass
class LoggedRun:
    """What one W&B run of the sweep logged (from its record log)."""

    path: Path
    group: str | None
    job_type: str | None
    project: str | None
    entity: str | None
    history: set[str] = field(default_factory=set)
    summary: set[str] = field(default_factory=set)
    config: set[str] = field(default_factory=set)  # dotted paths: "teacher.effort"


def _flat(d: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}{k}"
            yield key
            yield from _flat(v, key + ".")


def logged_runs(roots: Iterable[Path]) -> list[LoggedRun]:
    """Every W&B run recorded under ``roots`` (sweep dir, report run dir)."""
    out, seen = [], set()
    for root in roots:
        for f in find_runs(root):
            if f.resolve() in seen:
                continue
            seen.add(f.resolve())
            r = read_run(f)
            out.append(LoggedRun(path=f, group=r.group, job_type=r.job_type, project=r.project,
                                 entity=r.entity,
                                 history={k for h in r.history for k in h if not k.startswith("_")},
                                 summary=set(r.summary), config=set(_flat(r.config))))
    return out


# ---------------------------------------------------------------------------- requirements
@dataclass(frozen=True)
class Need:
    """A key a panel reads: ``kind`` summary | history | config | table, from runs of ``job_type``."""

    kind: str
    job_type: str
    key: str
    columns: tuple[str, ...] = ()  # for a table: the columns the panel plots


def _has(run: LoggedRun, need: Need) -> bool:
    if need.kind == "table":  # a table's summary entry: the key itself, or its fields under it (nested keys)
        return need.key in run.summary or f"{need.key}/_type" in run.summary
    return need.key in getattr(run, need.kind)


def check_keys(needs: Iterable[Need], runs: list[LoggedRun], group: str) -> None:
    """Each key must have been logged by some run of the group with that job type (a table: with those
    columns); a ``WandbReportError`` names every missing key."""
    problems = []
    tables: dict[tuple[str, str], list[str]] = {}
    for need in needs:
        pool = [r for r in runs if r.group == group and r.job_type == need.job_type]
        if not pool:
            problems.append(f"{need.kind} key {need.key!r}: no {need.job_type!r} run of W&B group {group!r} "
                            "was found on disk")
            continue
        if not any(_has(r, need) for r in pool):
            problems.append(f"{need.kind} key {need.key!r} was not logged by any {need.job_type!r} run of W&B "
                            f"group {group!r} ({len(pool)} runs)")
            continue
        if need.columns:
            if (need.job_type, need.key) not in tables:
                run = next(r for r in pool if _has(r, need))
                tables[(need.job_type, need.key)] = read_table(read_run(run.path), need.key)["columns"]
            cols = tables[(need.job_type, need.key)]
            missing = [c for c in need.columns if c not in cols]
            if missing:
                problems.append(f"table {need.key!r} has no column {', '.join(map(repr, missing))} "
                                f"(columns: {cols})")
    if problems:
        raise WandbReportError("W&B report: panels name keys the sweep's runs did not log: "
                               + "; ".join(dict.fromkeys(problems)))  # one line (exit_codes.py)


# -------------------------------------------------------------------------------- building
@dataclass
class ReportText:
    title: str
    question: str
    method: str
    notes: list[str] = field(default_factory=list)  # e.g. how teacher USD was found


def build(text: ReportText, group: str, entity: str, project: str, *, splits: list[str],
          cost_kind: str | None, has_categories: bool) -> tuple[Any, list[Need]]:
    """The ``wandb_workspaces`` Report and the keys its panels read."""
    import wandb_workspaces.reports.v2 as wr

    needs: list[Need] = []

    def runset(job_type: str, name: str):
        # entity/project are filled in at publish time (the library looks the project up then)
        return wr.Runset(name=name, filters=f"Group == '{group}' and JobType == '{job_type}'")

    def table_chart(table: str, preset: str, fields: dict[str, str], title: str):
        needs.append(Need("table", "report", table, tuple(fields.values())))
        return wr.CustomChart(query={"summaryTable": {"tableKey": table}}, chart_name=preset,
                              chart_fields=dict(fields), chart_strings={"title": title},
                              layout=wr.Layout(w=12, h=8))

    blocks: list[Any] = [wr.TableOfContents(), wr.H2("Question"), wr.P(text.question), wr.H2("Method"),
                         wr.P(text.method), *[wr.P(n) for n in text.notes]]

    size_panels = []
    for s in splits:
        for stat in ("", "_lo", "_hi"):
            size_panels.append(table_chart("sweep/cells", "wandb/line/v0",
                                           {"x": "size", "y": f"student_{s}_accuracy{stat}", "stroke": "effort"},
                                           f"student {s} accuracy{' (interval ' + stat[1:] + ')' if stat else ''} "
                                           "vs dataset size, one line per effort (mean over seeds)"))
    per_run = []
    for s in splits:
        key = f"eval/student/{s}/accuracy"
        needs += [Need("config", "eval", "recipe.size"), Need("summary", "eval", key)]
        per_run.append(wr.ScatterPlot(title=f"each run: student {s} accuracy vs recipe.size",
                                      x=wr.Config("recipe.size"), y=wr.SummaryMetric(key)))
    blocks += [wr.H2("Accuracy vs dataset size"),
               wr.PanelGrid(runsets=[runset("report", "sweep cells")], panels=size_panels),
               wr.PanelGrid(runsets=[runset("eval", "eval runs")], panels=per_run)]

    if has_categories:
        blocks += [wr.H2("Retention by capability category"),
                   wr.PanelGrid(runsets=[runset("report", "sweep cells")], panels=[
                       table_chart("sweep/categories", "wandb/bar/v0", {"label": "label", "value": "retention"},
                                   "retention (student / teacher) per cell, split and category")])]

    cost_panels = [table_chart("sweep/cells", "wandb/scatter/v0", {"x": "train_tokens", "y": "student_test_accuracy"},
                               "student test accuracy vs supervised training tokens (every cell)"),
                   table_chart("sweep/frontier_tokens", "wandb/line/v0",
                               {"x": "train_tokens", "y": "student_test_accuracy", "stroke": "frontier"},
                               "the Pareto frontier: accuracy vs supervised training tokens")]
    if cost_kind:
        cost_panels[:0] = [table_chart("sweep/cells", "wandb/scatter/v0", {"x": "teacher_usd", "y": "student_test_accuracy"},
                                       f"student test accuracy vs teacher USD ({cost_kind}; every cell)"),
                           table_chart("sweep/frontier_usd", "wandb/line/v0",
                                       {"x": "teacher_usd", "y": "student_test_accuracy", "stroke": "frontier"},
                                       f"the Pareto frontier: accuracy vs teacher USD ({cost_kind})")]
    needs.append(Need("table", "report", "sweep/frontier", ("frontier", "setting", "x", "student_test_accuracy")))
    cost_panels.append(wr.WeavePanelSummaryTable(table_name="sweep/frontier", layout=wr.Layout(w=24, h=8)))
    blocks += [wr.H2("What each point of accuracy cost"),
               wr.PanelGrid(runsets=[runset("report", "sweep cells")], panels=cost_panels)]

    needs.append(Need("history", "train", "train/loss"))
    blocks += [wr.H2("Training curves"),
               wr.PanelGrid(runsets=[runset("train", "train runs")], panels=[
                   wr.LinePlot(title="train/loss per run", x="Step", y=["train/loss"], layout=wr.Layout(w=24, h=8))])]

    needs.append(Need("table", "report", "sweep/runs", ("job", "effort", "size", "seed", "student_test_accuracy",
                                                         "teacher_usd", "train_tokens")))
    blocks += [wr.H2("Runs"),
               wr.PanelGrid(runsets=[runset("report", "sweep cells")], panels=[
                   wr.WeavePanelSummaryTable(table_name="sweep/runs", layout=wr.Layout(w=24, h=10))])]
    report = wr.Report(project=project, entity=entity, title=text.title[:128],
                       description=f"Sweep group {group}", blocks=blocks)
    return report, needs


def spec(report: Any, group: str) -> dict[str, Any]:
    """The library's serialised model of ``report`` (no network: run sets carry no project yet)."""
    from importlib.metadata import version

    model = report._to_model()
    return {"format": FORMAT, "wandb_workspaces": version("wandb-workspaces"), "group": group,
            "viewspec": model.model_dump(mode="json", by_alias=True, exclude_none=True)}


def panel_keys(spec_dict: dict[str, Any]) -> list[str]:
    """Every metric, config key and table the spec's panels read, as logged keys: the spec's spelling
    (``summary:eval/x``, ``config:recipe.value.size``, a custom chart's ``tableKey``, a table panel's key)
    turned back into the key a run logged (``eval/x``, ``recipe.size``, ``sweep/cells``)."""
    out: list[str] = []

    def logical(key: str) -> str:
        section, _, name = key.partition(":")
        if not name:
            return key
        if section == "config":
            first, _, rest = name.partition(".value")
            return first + rest
        return name

    def walk(o: Any) -> None:
        if isinstance(o, dict):
            cfg = o.get("config") if isinstance(o.get("config"), dict) else {}
            for k in ("metrics", "xAxis", "yAxis"):
                v = cfg.get(k)
                out.extend(logical(x) for x in (v if isinstance(v, list) else [v] if isinstance(v, str) else []))
            if o.get("name") == "tableKey" and isinstance(o.get("value"), str):  # a custom chart's table
                out.append(o["value"])
            key = ((((cfg.get("panel2Config") or {}).get("exp") or {}).get("fromOp") or {}).get("inputs") or {}).get("key")
            if isinstance(key, dict) and isinstance(key.get("val"), str):  # a table panel's table
                out.append(key["val"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(spec_dict)
    return out


def write_spec(report: Any, group: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec(report, group), indent=2) + "\n")
    tmp.replace(path)
    return path


# -------------------------------------------------------------------------------- publishing
def load_spec(path: str | Path) -> Any:
    """A saved spec file -> the library's ``Report`` (a ``WandbReportError`` naming the file if unreadable)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces.reports.v2 import internal

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"report.publish_file: {path}: cannot read a W&B report spec ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "viewspec" not in data:
        raise ConfigError(f"report.publish_file: {path}: not a distill_lab W&B report spec "
                               f"(expected \"format\": {FORMAT!r})")
    try:
        return wr.Report._from_model(internal.ReportViewspec.model_validate(data["viewspec"]))
    except Exception as e:  # noqa: BLE001 - pydantic's validation error, reported with the file
        raise ConfigError(f"report.publish_file: {path}: the spec does not validate: {e}") from None


def publish(report: Any, entity: str | None = None, project: str | None = None) -> str:
    """Save ``report`` through the library (W&B's GraphQL ``upsertView``) and return its URL. Run sets get
    the report's entity/project; an empty entity becomes the key's default entity."""
    import wandb
    import wandb_workspaces.reports.v2 as wr

    try:
        api = wandb.Api()
        if entity:
            report.entity = entity
        if project:
            report.project = project
        if not report.entity:
            report.entity = api.default_entity
        for block in report.blocks:
            if isinstance(block, wr.PanelGrid):
                for rs in block.runsets:
                    rs.entity = rs.entity or report.entity
                    rs.project = rs.project or report.project
        report.save()
    except wandb.errors.UsageError as e:
        raise WandbReportError(f"W&B report: not logged in ({e}); set WANDB_API_KEY or run `wandb login`, "
                               "then publish the saved spec with report.publish_file=<wandb_report.json>") from None
    except Exception as e:  # noqa: BLE001 - the server refused or was unreachable: one line naming it
        base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
        raise WandbReportError(f"W&B report: saving to {base} failed: {type(e).__name__}: {str(e)[:300]}; the spec "
                               "is kept, publish it again with report.publish_file=<wandb_report.json>") from None
    return report.url


def publish_hint(path: Path) -> str:
    return (f"W&B Report specification written to {path} (not published: report.publish=false). Publish it "
            f"where a W&B key is configured (WANDB_API_KEY or `wandb login`; WANDB_BASE_URL for a private "
            f"server): distill-lab report report.publish_file={path}")


# ------------------------------------------------------------------------------- the sweep's
def sweep_group(configured: str | None, runs: list[LoggedRun], sweep_dir: Path) -> str:
    """The W&B group of the sweep: ``logger.group`` when set, else the one group its runs recorded."""
    if configured:
        return configured
    groups = sorted({r.group for r in runs if r.group})
    if not runs:
        raise WandbReportError(f"report.wandb_report: no W&B run files (run-*.wandb) under {sweep_dir}: the sweep "
                               "was not logged with logger=wandb, so no W&B Report can show its runs")
    if len(groups) != 1:
        raise WandbReportError(f"report.wandb_report: the W&B runs under {sweep_dir} recorded "
                               f"{'no group' if not groups else 'groups ' + ', '.join(groups)}; "
                               "set logger.group=<the sweep's group>")
    return groups[0]


def splits_of(rows: list[dict[str, Any]]) -> list[str]:
    from distill_lab.vocab import HELD_OUT_SPLITS

    return [s for s in HELD_OUT_SPLITS if any(r.get(f"student_{s}_accuracy") for r in rows)]


def sweep_tables(res: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The tables the W&B Report's panels read, from ``sweep.write_report``'s result."""
    rows, runs, other, fronts = res["rows"], res["runs"], res["other_keys"], res["frontiers"]
    splits = splits_of(rows)

    def m(row, key, i=None):
        v = row.get(key)
        if not isinstance(v, dict):
            return None
        return v.get("mean") if i is None else (v.get("ci") or [None, None])[i]

    def on(axis: str, label: str) -> bool:
        f = fronts.get(axis)
        return bool(f) and any(p["label"] == label and p["on_frontier"] for p in f["points"])

    def label(r: dict[str, Any]) -> str:
        return ", ".join(str(r[k]) for k in ("effort", "size", *other) if r.get(k) is not None)

    # the SFT+RL arm (pipeline jobs' eval_rl/, model student_rl), where the sweep has one: accuracy with its
    # interval, retention (student_rl / teacher) and the truncated share per split, beside the SFT student's
    rl_splits = [s for s in splits if any(r.get(f"{RL_MODEL}_{s}_accuracy") for r in rows)]
    cols = ["effort", "size", *other, "n_runs"]
    for s in splits:
        cols += [f"student_{s}_accuracy", f"student_{s}_accuracy_lo", f"student_{s}_accuracy_hi"]
    for s in rl_splits:
        cols += [f"{RL_MODEL}_{s}_accuracy", f"{RL_MODEL}_{s}_accuracy_lo", f"{RL_MODEL}_{s}_accuracy_hi",
                 f"retention_{s}", f"{RL_MODEL}_retention_{s}", f"student_{s}_truncated", f"{RL_MODEL}_{s}_truncated"]
    cols += ["teacher_usd", "teacher_usd_kind", "price_model", "train_tokens", "train_flops", "total_usd",
             "on_frontier_usd", "on_frontier_tokens"]
    cells = []
    for r in rows:
        line = [str(r.get("effort")), r.get("size"), *[r.get(k) for k in other], r.get("n_runs")]
        for s in splits:
            k = f"student_{s}_accuracy"
            line += [m(r, k), m(r, k, 0), m(r, k, 1)]
        for s in rl_splits:
            k = f"{RL_MODEL}_{s}_accuracy"
            line += [m(r, k), m(r, k, 0), m(r, k, 1), m(r, f"retention_{s}"), m(r, f"{RL_MODEL}_retention_{s}"),
                     m(r, f"student_{s}_truncated"), m(r, f"{RL_MODEL}_{s}_truncated")]
        line += [r.get("teacher_usd"), r.get("teacher_usd_kind"), r.get("price_model"), r.get("train_tokens"),
                 r.get("train_flops"), r.get("total_usd"), on("teacher_usd", label(r)), on("train_tokens", label(r))]
        cells.append(line)
    cats = [[str(r.get("effort")), r.get("size"), key.split("/", 1)[0], key.split("/", 1)[1],
             f"{label(r)}: {key}", m(st, "retention"), m(st, "retention", 0), m(st, "retention", 1)]
            for r in rows for key, st in (r.get("categories") or {}).items()]
    run_cols = ["job", "status", "effort", "size", "seed", *other, "student_test_accuracy", "student_ood_accuracy",
                "teacher_usd", "teacher_usd_kind", "price_model", "teacher_input_tokens", "teacher_output_tokens",
                "train_tokens", "train_flops", "wall_s", "machine"]
    run_rows = [[r.job, r.status, r.effort, r.size, r.seed, *[r.params.get(k) for k in other],
                 r.accuracy.get("student", {}).get("test"), r.accuracy.get("student", {}).get("ood"),
                 r.cost.get("teacher_usd"), r.cost.get("teacher_usd_kind"), r.cost.get("price_model"),
                 r.cost.get("teacher_input_tokens"), r.cost.get("teacher_output_tokens"), r.train_tokens,
                 r.cost.get("train_flops"), r.wall_s, r.cost.get("machine")] for r in runs]
    if any(r.accuracy.get(RL_MODEL) for r in runs):  # each run's SFT+RL student beside its SFT one
        at = run_cols.index("student_ood_accuracy") + 1
        run_cols[at:at] = [f"{RL_MODEL}_test_accuracy", f"{RL_MODEL}_ood_accuracy"]
        run_rows = [[*row[:at], r.accuracy.get(RL_MODEL, {}).get("test"), r.accuracy.get(RL_MODEL, {}).get("ood"),
                     *row[at:]] for r, row in zip(runs, run_rows, strict=True)]
    front_rows = [[axis, p["label"], p["x"], p["y"], p["on_frontier"], p["cheapest_within"]]
                  for axis, f in fronts.items() for p in f["points"]]

    def members(axis: str) -> list[list[Any]]:  # the frontier alone, in order of cost: drawn as a line
        f = fronts.get(axis)
        return [[f"{axis} frontier", p["label"], p["x"], p["y"], p["cheapest_within"]] for p in f["frontier"]] if f else []

    return {"sweep/cells": (cols, cells),
            "sweep/categories": (["effort", "size", "split", "category", "label", "retention", "retention_lo",
                                  "retention_hi"], cats),
            "sweep/runs": (run_cols, run_rows),
            "sweep/frontier": (["frontier", "setting", "x", "student_test_accuracy", "on_frontier",
                                "cheapest_within"], front_rows),
            "sweep/frontier_usd": (["frontier", "setting", "teacher_usd", "student_test_accuracy", "cheapest_within"],
                                   members("teacher_usd")),
            "sweep/frontier_tokens": (["frontier", "setting", "train_tokens", "student_test_accuracy",
                                       "cheapest_within"], members("train_tokens"))}


def _interval_words(rows: list[dict[str, Any]], confidence: float) -> str:
    """How the cells' intervals were made, as ``report/sweep_stats.py`` made them (per cell: from samples, or
    over seeds alone where the runs kept none)."""
    t_only = sum(1 for r in rows if any(isinstance(v, dict) and str(v.get("method", "")).startswith("t over seeds")
                                        for v in r.values()))
    words = (f"mean over seeds with a {round(confidence * 100)}% interval over seeds and prompts together "
             "(two-level bootstrap; Wilson where every seed agrees)")
    if t_only == len(rows) and rows:
        return (f"mean over seeds with a {round(confidence * 100)}% Student-t interval over seeds only (the runs "
                "kept no samples.jsonl)")
    if t_only:
        words += f"; {t_only} of {len(rows)} cells without samples.jsonl: a Student-t interval over seeds only"
    return words


def sweep_text(rc: Any, res: dict[str, Any], sweep_dir: Path, confidence: float) -> ReportText:
    """Title, question and method: ``report.title/question/method`` where given, else what the runs record."""
    runs = [r for r in res["runs"] if r.status == "ok"]
    swept: dict[str, set[str]] = {}
    for r in runs:
        for k, v in r.params.items():
            swept.setdefault(k, set()).add(v)
    varied = {k: sorted(v) for k, v in swept.items() if len(v) > 1}
    teachers = sorted({r.teacher for r in runs if r.teacher})
    students = sorted({r.student for r in runs if r.student})
    question = rc.question or (f"How do {', '.join(k for k in varied if k != 'seed') or 'the swept settings'} change "
                               "the student's accuracy, and what does each point of accuracy cost?")
    method = rc.method or (
        f"{len(runs)} finished runs of {len(res['runs'])} in {sweep_dir}: teacher {', '.join(teachers) or '?'}, "
        f"student {', '.join(students) or '?'}; swept " +
        "; ".join(f"{k} ∈ {{{', '.join(v)}}}" for k, v in varied.items()) +
        f". Cells: {_interval_words(res['rows'], confidence)}.")
    notes = []
    kinds = {r.get("teacher_usd_kind") for r in res["rows"]}
    models = sorted({r["price_model"] for r in res["rows"] if r.get("price_model")})
    if "projected" in kinds:
        notes.append(f"Teacher USD is PROJECTED at {', '.join(models)} list prices from the rows' token counts: "
                     "the teacher itself cost nothing.")
    return ReportText(title=rc.title or f"Sweep {sweep_dir.name}", question=question, method=method, notes=notes)


def run_for_sweep(cfg: Any, res: dict[str, Any], group: str, roots: list[Path], out_dir: Path) -> dict[str, str]:
    """Build, check, write and (``report.publish``) publish the sweep's W&B Report."""
    rc = cfg.report
    logged = logged_runs(roots)
    projects = sorted({r.project for r in logged if r.group == group and r.project})
    entities = sorted({r.entity for r in logged if r.group == group and r.entity})
    project = projects[0] if len(projects) == 1 else cfg.logger.project
    entity = cfg.logger.entity or (entities[0] if len(entities) == 1 else "")
    kinds = sorted({r.get("teacher_usd_kind") for r in res["rows"] if r.get("teacher_usd_kind")})
    cost_kind = None
    if "teacher_usd" in res["frontiers"]:
        cost_kind = kinds[0] if len(kinds) == 1 else "mixed"
    report, needs = build(sweep_text(rc, res, Path(rc.sweep_dir), cfg.eval.confidence), group, entity, project,
                          splits=splits_of(res["rows"]), cost_kind=cost_kind,
                          has_categories=any(r.get("categories") for r in res["rows"]))
    check_keys(needs, logged, group)
    path = write_spec(report, group, out_dir / REPORT_FILE)
    out = {"wandb_report_spec": str(path)}
    if rc.publish:
        url = publish(report)
        print(f"distill-lab report: W&B Report published: {url}")
        out["wandb_report_url"] = url
    else:
        print(f"distill-lab report: {publish_hint(path)}")
    return out


def publish_file(path: str | Path) -> str:
    """``report.publish_file``: publish a saved spec, print and return its URL."""
    url = publish(load_spec(path))
    print(f"distill-lab report: W&B Report published: {url}")
    return url
