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
from distill_lab.stages.report.sweep_runs import Run, config_groups, swept_keys
from distill_lab.stages.report.tables import interval_cell, markdown_table

NOT_PERCENT = ("cost_usd", "train_loss")  # plain figures among the cells (the rest are fractions shown in %)


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
             "accuracies and retention in %.", ""]
    lines += markdown_table([h for _, h in cols],
                            ([interval_cell(row.get(k), scale=1 if k in NOT_PERCENT else 100) for k, _ in cols]
                             for row in rows))
    if any(row.get("categories") for row in rows):
        lines += ["", "## Retention by capability category (student / teacher)", "",
                  "Retention on score: the same ratio on the families' graded scores (for style_rules the voice, "
                  "for json_fields / sorted_words the content; per family below).", ""]
        lines += markdown_table(
            ["effort", "size", "split", "category", "base %", "student %", "teacher %", "retention %",
             "retention on score %", "seed's figure"],
            ([row["effort"], row["size"], *key.split("/", 1),
              *(interval_cell(st.get(what)) for what in ("base", "student", "teacher", "retention",
                                                          "score_retention")),
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
