"""The sweep's charts: accuracy and retention against dataset size (or supervised tokens), one line per
effort with the seed interval as error bars, and retention per capability category per cell."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from distill_lab.stages.report.common import retention_by_category_plot
from distill_lab.stages.report.samples import RL_LABEL, RL_MODEL
from distill_lab.stages.report.sweep_runs import SPLITS
from distill_lab.vocab import effort_rank


def plot(rows: list[dict[str, Any]], key_prefix: str, ylabel: str, path: Path, title: str,
         x: str = "size") -> Path | None:
    """``<prefix>_test`` and ``<prefix>_ood`` against ``x`` (the dataset size, or ``train_tokens``: the
    supervised tokens trained on, the fair axis when efforts make rows of different lengths), one line
    per effort, CI error bars. For ``student``, runs with an SFT+RL student (``eval_rl/``) add a dashed line per
    effort for it beside the SFT one."""
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
        rl_key = f"{RL_MODEL}_{s}_accuracy" if key_prefix == "student" else None
        rl = rl_key is not None and any((r.get(rl_key) or {}).get("mean") is not None for r in rows)
        for effort in sorted(by_effort, key=effort_rank):
            pts = sorted(by_effort[effort], key=lambda r: r[x])
            xs = [r[x] for r in pts]
            ys = [100 * r[key]["mean"] for r in pts]
            lo = [100 * (r[key]["mean"] - r[key]["ci"][0]) if r[key]["ci"] else 0 for r in pts]
            hi = [100 * (r[key]["ci"][1] - r[key]["mean"]) if r[key]["ci"] else 0 for r in pts]
            line = ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3,
                               label=f"effort={effort}" + (", SFT" if rl else ""))
            rl_pts = [r for r in pts if rl_key and (r.get(rl_key) or {}).get("mean") is not None]
            if rl_pts:  # the same runs after `distill-lab rl`: same colour, dashed
                st = [r[rl_key] for r in rl_pts]
                ax.errorbar([r[x] for r in rl_pts], [100 * v["mean"] for v in st],
                            yerr=[[100 * (v["mean"] - v["ci"][0]) if v["ci"] else 0 for v in st],
                                  [100 * (v["ci"][1] - v["mean"]) if v["ci"] else 0 for v in st]],
                            marker="s", capsize=3, linestyle="--", color=line[0].get_color(),
                            label=f"effort={effort}, {RL_LABEL}")
            cut = [(xv, yv) for xv, yv, r in zip(xs, ys, pts, strict=True) if s in (r.get("budget_cut") or [])]
            if cut:  # eval.allow_truncation: the budget cut the teacher's own answers here
                ax.scatter([c[0] for c in cut], [c[1] for c in cut], s=140, facecolors="none", edgecolors="red",
                           linewidths=2, zorder=5, label="budget below the teacher's answers")
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
            f"retention per category ({label}; mean over {len(row['seeds'])} seeds, interval over seeds and prompts)", out_dir / name)))
    return paths
