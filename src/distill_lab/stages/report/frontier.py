"""Accuracy against what it cost: the Pareto frontier of a sweep's cells and the cheapest good setting.

A cell (one setting, mean over seeds) is on the frontier when no other cell is at most as costly and at
least as accurate, better on one of the two. ``cheapest_within`` answers "the cheapest setting within N
points of the best". Written here (a dozen lines) rather than taken from a library: the libraries that
compute Pareto fronts (pymoo, paretoset) bring far more than two sorted comparisons need.

Plots are saved with a JSON sidecar (``<plot>.json``) holding exactly the values drawn, so the figure can
be checked and re-plotted elsewhere (the W&B Report draws the same points from the ``sweep/cells`` table).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(cost, accuracy)`` that no other point dominates (cost lower or equal and
    accuracy higher or equal, strictly better in one), in order of cost."""
    front = []
    for i, (xi, yi) in enumerate(points):
        if not any((xj <= xi and yj >= yi) and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def cheapest_within(points: list[tuple[float, float]], n_points: float) -> int | None:
    """Index of the cheapest point whose accuracy (a fraction) is within ``n_points`` percentage points of
    the best; among equally cheap ones the more accurate. None without points."""
    if not points:
        return None
    best = max(y for _, y in points)
    ok = [i for i, (_, y) in enumerate(points) if y >= best - n_points / 100 - 1e-12]
    return min(ok, key=lambda i: (points[i][0], -points[i][1]))


def frontier(cells: list[dict[str, Any]], x: str, y: str, n_points: float,
             label: Any = None) -> dict[str, Any] | None:
    """The frontier over ``cells`` (dicts with numbers at ``x`` and ``y``; ``y`` a fraction or a
    ``{"mean": ...}`` cell): every point with its label and membership, the frontier's points in order of
    cost, and the cheapest within ``n_points`` of the best. None when fewer than one cell has both."""
    label = label or (lambda c: ", ".join(f"{c[k]}" for k in ("effort", "size") if c.get(k) is not None))
    pts, used = [], []
    for c in cells:
        xv, yv = c.get(x), c.get(y)
        yv = yv.get("mean") if isinstance(yv, dict) else yv
        if isinstance(xv, int | float) and isinstance(yv, int | float):
            pts.append((float(xv), float(yv)))
            used.append(c)
    if not pts:
        return None
    front = pareto_front(pts)
    pick = cheapest_within(pts, n_points)
    points = [{"label": label(c), "x": p[0], "y": p[1], "on_frontier": i in front, "cheapest_within": i == pick}
              for i, (c, p) in enumerate(zip(used, pts, strict=True))]
    return {"x": x, "y": y, "n_points": n_points, "points": points, "frontier": [points[i] for i in front],
            "cheapest_within": points[pick] if pick is not None else None,
            "best": max(points, key=lambda p: p["y"])}


def frontier_plot(front: dict[str, Any], xlabel: str, ylabel: str, title: str, path: Path,
                  log_x: bool = False) -> Path:
    """Accuracy (%) against cost, every cell a dot, the frontier a step line through its points, the cheapest
    setting within N points ringed; the values drawn go to ``<path>.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pts = front["points"]
    ax.scatter([p["x"] for p in pts], [100 * p["y"] for p in pts], color="0.55", zorder=2, label="setting")
    for p in pts:
        ax.annotate(p["label"], (p["x"], 100 * p["y"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    fr = front["frontier"]
    ax.step([p["x"] for p in fr], [100 * p["y"] for p in fr], where="post", color="C3", zorder=3,
            marker="o", label="Pareto frontier")
    pick = front["cheapest_within"]
    if pick is not None:
        ax.scatter([pick["x"]], [100 * pick["y"]], s=180, facecolors="none", edgecolors="C2", linewidths=2,
                   zorder=4, label=f"cheapest within {front['n_points']:g} pt of best")
    if log_x and all(p["x"] > 0 for p in pts):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    sidecar = {"xlabel": xlabel, "ylabel": ylabel, "title": title, **front}
    Path(path).with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return Path(path)


def frontier_markdown(front: dict[str, Any], heading: str, x_header: str, x_fmt) -> list[str]:
    """The frontier's points as a table, and the cheapest setting within N points of the best."""
    lines = ["", f"## {heading}", "", f"| setting | {x_header} | student test % | on frontier |", "|---|---|---|---|"]
    for p in sorted(front["points"], key=lambda p: (p["x"], -p["y"])):
        lines.append(f"| {p['label']} | {x_fmt(p['x'])} | {100 * p['y']:.1f} | {'yes' if p['on_frontier'] else ''} |")
    pick, best = front["cheapest_within"], front["best"]
    if pick is not None:
        lines += ["", f"Cheapest setting within {front['n_points']:g} points of the best ({best['label']}, "
                      f"{100 * best['y']:.1f} %): **{pick['label']}**, {100 * pick['y']:.1f} % at {x_fmt(pick['x'])} "
                      f"({'the best itself' if pick is best or pick['label'] == best['label'] else 'vs ' + x_fmt(best['x'])})."]
    return lines


# ------------------------------------------------------------------------------- sweep report
AXES = {  # cell key -> (plot file stem, axis label, table header)
    "teacher_usd": ("frontier_teacher_usd", "teacher spend (USD)", "teacher $"),
    "train_tokens": ("frontier_train_tokens", "supervised tokens trained on", "supervised tokens"),
}


def _usd(v: float) -> str:
    return f"${v:.4g}"


def _tokens(v: float) -> str:
    return f"{v / 1000:.1f} k" if v >= 1000 else f"{v:.0f}"


def _label(row: dict[str, Any], other: list[str]) -> str:
    return ", ".join(str(row[k]) for k in ("effort", "size", *other) if row.get(k) is not None)


def cost_report(rows: list[dict[str, Any]], other: list[str], out_dir: Path, n_points: float,
                plots: bool = True) -> tuple[list[str], dict[str, str], dict[str, dict[str, Any]]]:
    """``sweep.md``'s cost sections (what each cell cost; a frontier table per cost axis), the frontier
    plots, and the frontiers themselves (``{"teacher_usd": ..., "train_tokens": ...}``)."""
    from distill_lab.stages.report.tables import MISSING, markdown_table

    if not any("teacher_usd" in r for r in rows):
        return [], {}, {}
    kinds = sorted({r.get("teacher_usd_kind") or "none" for r in rows})
    models = sorted({r["price_model"] for r in rows if r.get("price_model")})
    kind = kinds[0] if len(kinds) == 1 else "mixed"
    usd_note = {"paid": "what the teacher's requests cost (the rows' recorded cost)",
                "projected": f"PROJECTED at {', '.join(models)} list prices from the rows' token counts "
                             "(the teacher itself cost nothing)",
                "none": "0: the teacher cost nothing (the offline oracle); set report.projected_price_model="
                        "<claude model> to project what a paid teacher would have cost"}.get(
        kind, "paid for some cells and projected for others: compare with care")
    lines = ["", "## What each cell cost", "",
             f"Teacher $: {usd_note}. Training FLOPs: 6 × all of the student's parameters × supervised tokens "
             "(an upper bound with LoRA; artifacts/run_cost.py). Generation: the tokens RL sampled (its rollouts) "
             "and the student's mean tokens per greedy held-out answer. Means over the cell's seeds.", ""]

    def cell(v: Any, fmt) -> str:
        return fmt(v) if isinstance(v, int | float) else MISSING

    lines += markdown_table(
        ["setting", "seeds", f"teacher $ ({kind})", "teacher tokens in", "teacher tokens out", "supervised tokens",
         "training FLOPs", "RL rollout tokens", "tokens / answer", "wall s", "machine"],
        ([_label(r, other), r.get("n_runs"), cell(r.get("teacher_usd"), _usd),
          cell(r.get("teacher_input_tokens"), _tokens), cell(r.get("teacher_output_tokens"), _tokens),
          cell(r.get("train_tokens"), _tokens), cell(r.get("train_flops"), lambda v: f"{v:.3g}"),
          cell(r.get("rl_rollout_tokens"), _tokens), cell(r.get("answer_tokens"), lambda v: f"{v:.0f}"),
          cell(r.get("wall_s"), lambda v: f"{v:.0f}"), r.get("machine") or MISSING] for r in rows))
    fronts: dict[str, dict[str, Any]] = {}
    artifacts: dict[str, str] = {}
    for x, (stem, xlabel, header) in AXES.items():
        if x == "teacher_usd" and kind not in ("paid", "projected"):
            continue
        front = frontier(rows, x, "student_test_accuracy", n_points, label=lambda r: _label(r, other))
        if front is None:
            continue
        fronts[x] = front
        if x == "teacher_usd":
            xlabel = f"teacher spend (USD, {kind}" + (f" at {', '.join(models)} list prices)" if kind == "projected"
                                                      else ")")
        fmt = _usd if x == "teacher_usd" else _tokens
        lines += frontier_markdown(front, f"Accuracy vs {xlabel}: the Pareto frontier", header, fmt)
        if plots:
            p = frontier_plot(front, xlabel,
                              "student test accuracy (%)",
                              "student test accuracy (mean over seeds) and the Pareto frontier",
                              out_dir / f"{stem}.png", log_x=x == "train_tokens")
            artifacts[f"{stem}_plot"] = str(p)
            lines += ["", f"![{stem}]({stem}.png)"]
    return lines, artifacts, fronts
