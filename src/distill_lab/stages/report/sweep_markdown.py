"""``sweep.md``: the cells of a sweep (mean over seeds with the seed interval), the retention per capability
category, the per-family figures and contrasts, the runs without results, the grid still missing and the
runs made with other settings, each named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_lab.stages.report.common import seed_cell
from distill_lab.stages.report.contrasts import contrasts_markdown
from distill_lab.stages.report.families import families_markdown
from distill_lab.stages.report.grid import missing_markdown
from distill_lab.stages.report.samples import RL_LABEL, RL_MODEL
from distill_lab.stages.report.sweep_runs import Run, config_groups, swept_keys
from distill_lab.stages.report.tables import interval_cell, markdown_table

NOT_PERCENT = ("cost_usd", "train_loss")  # plain figures among the cells (the rest are fractions shown in %)


RED = "🔴"


def _cell(row: dict[str, Any], key: str) -> str:
    if key.endswith(("_truncated", "_unclosed_thinking")) and row.get(key) is None and \
            str(row.get("samples", "")).startswith("0/"):
        return "not recoverable"
    txt = interval_cell(row.get(key), scale=1 if key in NOT_PERCENT else 100)
    if key == "effort" and row.get("budget_cut"):
        txt = f"{RED} {txt}"
    return txt


def budget_lines(rows: list[dict[str, Any]], runs: list[Run]) -> list[str]:
    """The generation budgets the cells ran with, and a red warning where one cut the teacher's own answers
    (``eval.allow_truncation``) or was never checked against them (runs from before the check)."""
    ok = [r for r in runs if r.status == "ok"]
    out = []
    # a split is flagged (budget_cut) for a budget below the teacher's answers (budget_below) and/or because
    # the teacher's API cut some of them (budget_api_cut): each reason its own line
    cut = [row for row in rows if row.get("budget_below", row.get("budget_cut"))]
    if cut:
        out.append(f"{RED} **Truncation allowed: a budget below the teacher's own answers.** "
                   + "; ".join(f"effort {row.get('effort')}, size {row.get('size')}: "
                               f"{', '.join(row.get('budget_below', row.get('budget_cut')))} "
                               f"(max_new_tokens {row.get('max_new_tokens')})" for row in cut)
                   + ". A perfect student would be cut off there: these accuracies are biased low (the "
                   "'truncated' columns show how many outputs the budget ended).")
        out.append("")
    api = [row for row in rows if row.get("budget_api_cut")]
    if api:
        out.append(f"{RED} **Truncation allowed: the teacher's API cut some of its own answers** (at "
                   "teacher.max_tokens; stop reason max_tokens / length). "
                   + "; ".join(f"effort {row.get('effort')}, size {row.get('size')}: {', '.join(row['budget_api_cut'])} "
                               f"(max_new_tokens {row.get('max_new_tokens')})" for row in api)
                   + ". The budgets there were measured on cut answers (lower bounds), so a perfect student may be "
                   "cut off: these accuracies may be biased low. Re-generate those rows with a higher "
                   "teacher.max_tokens.")
        out.append("")
    unchecked = [r for r in ok if r.evidence and not r.evidence.get("budgets")]
    if unchecked:
        budgets = sorted({str(r.evidence.get("max_new_tokens")) for r in unchecked})
        out.append(f"{RED} **Budgets not checked against the teacher** in {len(unchecked)} of {len(ok)} runs (made "
                   f"before eval.max_new_tokens=auto; max_new_tokens {', '.join(budgets)}): whether the budget cut "
                   "the teacher's own answers is not recorded in them.")
        out.append("")
    if any(not str(row.get("samples", "0/0")).startswith(str(row.get("n_runs"))) for row in rows):
        out.append("Truncation and unclosed-thinking shares come from the runs' samples.jsonl; cells whose runs "
                   "have none say 'not recoverable' (their accuracies come from metrics.json).")
        out.append("")
    return out


def markdown(rows: list[dict[str, Any]], runs: list[Run], sweep_dir: Path, confidence: float,
             grid: Any = None, contrast_rows: list[dict[str, Any]] | None = None) -> str:
    other = [k for k in swept_keys([r for r in runs if r.status == "ok"])
             if k not in ("teacher.effort", "recipe.size")]
    cols = [("effort", "effort"), ("size", "size"), *[(k, k) for k in other], ("n_runs", "seeds"),
            ("student_test_accuracy", "student test %"), ("student_ood_accuracy", "student OOD %"),
            ("base_test_accuracy", "base test %"), ("teacher_test_accuracy", "teacher test %"),
            ("retention_test", "retention test %"), ("retention_ood", "retention OOD %")]
    rl = any(row.get(f"{RL_MODEL}_test_accuracy") or row.get(f"{RL_MODEL}_ood_accuracy") for row in rows)
    if rl:  # the same runs' RL'd students (eval_rl/), beside the SFT ones
        at = cols.index(("student_test_accuracy", "student test %"))
        cols[at:at + 2] = [("student_test_accuracy", "SFT test %"), ("student_ood_accuracy", "SFT OOD %"),
                           (f"{RL_MODEL}_test_accuracy", f"{RL_LABEL} test %"),
                           (f"{RL_MODEL}_ood_accuracy", f"{RL_LABEL} OOD %")]
    # per-sample evidence: shares pooled over the cell's runs (report/samples.py); a cell without samples has none
    cols += [("student_test_truncated", "truncated test %"), ("student_ood_truncated", "truncated OOD %"),
             ("student_test_unclosed_thinking", "unclosed think test %"),
             ("student_ood_unclosed_thinking", "unclosed think OOD %"), ("samples", "runs with samples")]
    if rl:  # the SFT+RL arm's retention and shares beside the SFT student's
        for i, (key, head) in enumerate(cols):
            if key.startswith(("retention_", "student_test_", "student_ood_")) and not key.endswith("_accuracy"):
                cols[i] = (key, f"SFT {head}")
        at = cols.index(("retention_ood", "SFT retention OOD %")) + 1
        cols[at:at] = [(f"{RL_MODEL}_retention_{s}", f"{RL_LABEL} retention {s.replace('ood', 'OOD')} %")
                       for s in ("test", "ood")]
        at = cols.index(("samples", "runs with samples"))
        cols[at:at] = [(f"{RL_MODEL}_{s}_{what}", f"{RL_LABEL} {head} {s.replace('ood', 'OOD')} %")
                       for what, head in (("truncated", "truncated"), ("unclosed_thinking", "unclosed think"))
                       for s in ("test", "ood")]
    if any(r.get("cost_per_point") is not None for r in rows):
        cols += [("cost_usd", "teacher $"), ("cost_per_point", "$ / acc. point"),
                 ("cost_per_gain_point", "$ / gained point")]
    if any(r.get("train_loss") is not None for r in rows):
        cols.append(("train_loss", "final train loss"))
    lines = [f"# Sweep report: {sweep_dir}", "",
             f"{sum(r.status == 'ok' for r in runs)} of {len(runs)} runs finished. Cells: mean over seeds "
             f"[{int(confidence * 100)}% interval over seeds and prompts together: a two-level bootstrap calibrated "
             "to Student's t for few seeds, Wilson where every seed agrees, clipped to the possible range; "
             "`stats.two_level_interval`]; accuracies and retention in %."
             + (" Cells whose runs kept no samples.jsonl: Student-t interval over seeds only."
                if any("t over seeds" in str((row.get("student_test_accuracy") or {}).get("method")) for row in rows)
                else "")
             + (f" SFT: the student after train; {RL_LABEL}: the same runs' student after `distill-lab rl` (their "
                "eval_rl/), on the same prompts (its contrast with SFT below, kind 'rl'); retention (student / "
                f"teacher) and the truncation and unclosed-thinking shares of each, SFT and {RL_LABEL}, side by "
                "side." if rl else ""), ""]
    lines += budget_lines(rows, runs)
    lines += markdown_table([h for _, h in cols],
                            ([_cell(row, k) for k, _ in cols] for row in rows))
    if any(row.get("categories") for row in rows):
        lines += ["", "## Retention by capability category (student / teacher)", "",
                  "Retention on score: the same ratio on the families' graded scores (for style_rules the voice, "
                  "for json_fields / sorted_words the content; per family below).", ""]
        models = ("base", "student", RL_MODEL, "teacher") if rl else ("base", "student", "teacher")
        lines += markdown_table(
            ["effort", "size", "split", "category", "base %", "SFT %" if rl else "student %",
             *([f"{RL_LABEL} %"] if rl else []), "teacher %", "retention %", "retention on score %",
             "seed's figure"],
            ([row["effort"], row["size"], *key.split("/", 1),
              *(interval_cell(st.get(what)) for what in (*models, "retention", "score_retention")),
              seed_cell(key.split("/", 1)[1])]
             for row in rows for key, st in (row.get("categories") or {}).items()))
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
