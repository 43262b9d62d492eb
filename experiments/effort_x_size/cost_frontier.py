"""The effort study's cost frontier from its committed results, with the teacher's spend projected.

    python experiments/effort_x_size/cost_frontier.py experiments/effort_x_size/results_smollm2 \
        [--price-model claude-opus-4-7] [--chars-per-token 4] [--frontier-points 5]

The committed results (``sweep.json``) carry each cell's accuracy, supervised tokens trained and wall
time, but not the teacher rows (the ``multirun/`` folders are not committed), so the sweep report itself
cannot be re-run with ``report.projected_price_model``. The oracle teacher is deterministic and its
prompt pool depends on ``recipe.seed`` only, so this script regenerates each cell's dataset (``distill-lab
generate experiment=effort_x_size``, a few seconds each, into a temporary folder), checks its row counts
against the runs' ``train_rows``, counts the rows' tokens (``artifacts/run_cost.count_tokens``: the oracle
records no usage, so from the text at ``--chars-per-token``), prices them at the model's list prices, and
writes ``cost_frontier.md`` with the frontier plots (``frontier_teacher_usd.png``,
``frontier_train_tokens.png``, each with a JSON sidecar) through the sweep report's own code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean

from distill_lab.artifacts.rows import load_rows
from distill_lab.artifacts.run_cost import count_tokens
from distill_lab.stages.report.frontier import cost_report
from distill_lab.teachers.cost import projected_cost


def cell_rows(sweep: dict, datasets: dict[tuple[str, int], Path], price_model: str, chars_per_token: float,
              machine: str) -> list[dict]:
    """The committed cells with each one's projected teacher cost from its regenerated dataset."""
    rows = []
    for c in sweep["cells"]:
        runs = [r for r in sweep["runs"] if r["status"] == "ok" and (r["effort"], r["size"]) == (c["effort"], c["size"])]
        ds = datasets[(c["effort"], c["size"])]
        data = load_rows(ds)
        train = sum(r["split"] == "train" for r in data)
        if any(r["train_rows"] != train for r in runs):
            raise SystemExit(f"{ds}: {train} train rows, the runs trained on {[r['train_rows'] for r in runs]}: "
                             "the regenerated dataset is not the one the runs used")
        tok = count_tokens(data, chars_per_token)
        rows.append({**c, "teacher_usd": projected_cost(price_model, tok.input_tokens, tok.output_tokens),
                     "teacher_usd_kind": "projected", "price_model": price_model,
                     "teacher_input_tokens": tok.input_tokens, "teacher_output_tokens": tok.output_tokens,
                     "train_flops": None, "wall_s": mean(r["wall_s"] for r in runs) if runs else None,
                     "machine": machine})
    return rows


def regenerate(sweep: dict, root: Path) -> dict[tuple[str, int], Path]:
    out = {}
    for c in sweep["cells"]:
        d = root / f"{c['effort']}_{c['size']}"
        subprocess.run(["distill-lab", "generate", "experiment=effort_x_size", f"teacher.effort={c['effort']}",
                        f"recipe.size={c['size']}", f"generate.output_dir={d}", f"run_dir={root / 'runs' / d.name}",
                        "generate.progress=false"], check=True, capture_output=True, cwd=root)
        out[(c["effort"], c["size"])] = d
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--price-model", default="claude-opus-4-7")
    ap.add_argument("--chars-per-token", type=float, default=4.0)
    ap.add_argument("--frontier-points", type=float, default=5.0)
    ap.add_argument("--machine", default="Intel Xeon VM, 2 cores (README: Machine and sizing)")
    args = ap.parse_args(argv)
    sweep = json.loads((args.results / "sweep.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        rows = cell_rows(sweep, regenerate(sweep, Path(tmp)), args.price_model, args.chars_per_token, args.machine)
    lines, plots, fronts = cost_report(rows, [], args.results, args.frontier_points)
    head = [f"# effort_x_size: what each point of accuracy cost (SmolLM2-135M, {len(sweep['runs'])} runs)", "",
            f"Teacher spend PROJECTED at {args.price_model} list prices: the oracle's datasets regenerated "
            f"(deterministic; row counts checked against the runs), tokens estimated from the rows' text at "
            f"{args.chars_per_token:g} characters per token (the oracle records no usage; Claude's tokenizer is not "
            "public). Accuracy, supervised tokens and wall time: the committed sweep.json. Training FLOPs: not "
            "recorded (the runs predate the train summary's parameter count). Written by "
            "experiments/effort_x_size/cost_frontier.py."]
    (args.results / "cost_frontier.md").write_text("\n".join(head + lines) + "\n")
    (args.results / "cost_frontier.json").write_text(json.dumps({"cells": [
        {k: r.get(k) for k in ("effort", "size", "teacher_usd", "teacher_usd_kind", "price_model",
                               "teacher_input_tokens", "teacher_output_tokens", "train_tokens", "wall_s")}
        for r in rows], "frontiers": fronts}, indent=2) + "\n")
    print(f"wrote {args.results / 'cost_frontier.md'} and {', '.join(sorted(plots.values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
