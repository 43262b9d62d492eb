"""The single-run report's side-by-side of a pipeline run with ``rl.enabled=true``: base, SFT student
(``eval/``), SFT+RL student (``eval_rl/``) and teacher on the same prompts, per split and capability
category, with the paired contrasts SFT+RL - SFT and SFT+RL - base.

Everything is computed from the two eval runs' ``samples.jsonl`` (greedy answers, ``report/samples.py``):
accuracies with ``stats.two_level_interval`` over prompts (one run: Wilson), contrasts paired on the prompts
both answered (one bootstrap resample for both sides; Newcombe where every resample agrees). The base and
the teacher are those of ``eval/`` (``eval_rl/`` evaluates them again on the same prompts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distill_lab.stages.report.samples import (
    RL_DIR,
    RL_LABEL,
    RL_MODEL,
    SAMPLES,
    answers,
    read_samples,
    rl_records,
)
from distill_lab.stages.report.tables import interval_cell, markdown_table
from distill_lab.stats import two_level_interval


def rl_partner(eval_dir: str | Path) -> Path | None:
    """The ``eval_rl/`` beside a pipeline's ``eval/`` (both with samples), or None."""
    d = Path(eval_dir)
    rl = d.parent / RL_DIR
    if d.name == RL_DIR or d.resolve() == rl.resolve():
        return None
    return rl if (rl / SAMPLES).is_file() and (d / SAMPLES).is_file() else None


def compare(sft_dir: str | Path, rl_dir: str | Path, confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per split (category ``all``) and, where a split has several, per capability category."""
    recs = read_samples(Path(sft_dir) / SAMPLES) + rl_records(Path(rl_dir) / SAMPLES)
    ans = answers(recs)
    splits = sorted({s for (_, s, _) in ans}, key=lambda s: (s != "test", s))
    rows = []
    for split in splits:
        cats = sorted({c for (m, s, _), (c, _, _) in ans.items() if s == split and m == "student" and c})
        for cat in ["all", *(cats if len(cats) > 1 else [])]:
            def col(model: str, cat=cat, split=split) -> dict[str, float]:
                return {pid: c for (m, s, pid), (k, c, _) in ans.items()
                        if m == model and s == split and (cat == "all" or k == cat)}

            by = {m: col(m) for m in ("base", "student", RL_MODEL, "teacher")}
            if not by["student"] or not by[RL_MODEL]:
                continue
            row: dict[str, Any] = {"split": split, "category": cat}
            for m, d in by.items():
                row[m] = two_level_interval([np.array([list(d.values())])], "mean", confidence=confidence) if d else None
            for name, a, b in (("rl_minus_sft", RL_MODEL, "student"), ("rl_minus_base", RL_MODEL, "base")):
                ids = sorted(set(by[a]) & set(by[b]))
                row[name] = two_level_interval([np.array([[by[a][i] for i in ids]]), np.array([[by[b][i] for i in ids]])],
                                               "diff", confidence=confidence) if ids else None
                if row[name] is not None:
                    row[name]["n"] = len(ids)
            rows.append(row)
    return rows


def _diff(st: dict[str, Any] | None) -> str:
    if not st or st.get("mean") is None:
        return "–"
    ci = st.get("ci")
    return f"{100 * st['mean']:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")


def compare_markdown(rows: list[dict[str, Any]], sft_dir: str | Path, rl_dir: str | Path,
                     confidence: float = 0.95) -> list[str]:
    if not rows:
        return []
    lines = [f"## SFT, {RL_LABEL} and base side by side", "",
             f"The SFT student (`{sft_dir}`) and the same student after `distill-lab rl` (`{rl_dir}`) on the same "
             f"prompts, beside the base and the teacher (greedy; accuracy in % with {int(confidence * 100)}% Wilson "
             "intervals; differences in points, paired on the prompts both answered: a bootstrap over prompts "
             "calibrated to Student's t, Newcombe where every resample agrees; `stats.two_level_interval`).", ""]
    lines += markdown_table(
        ["split", "category", "prompts", "base %", "SFT %", f"{RL_LABEL} %", "teacher %", f"{RL_LABEL} − SFT (pt)",
         f"{RL_LABEL} − base (pt)"],
        ([r["split"], r["category"], (r["rl_minus_sft"] or {}).get("n", "–"),
          *(interval_cell(r[m]) for m in ("base", "student", RL_MODEL, "teacher")),
          _diff(r["rl_minus_sft"]), _diff(r["rl_minus_base"])] for r in rows))
    return lines + [""]
