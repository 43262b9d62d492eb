"""The ``benchmark`` block of ``metrics.json`` (written by the eval stage on a public benchmark suite, see
``stages/evaluate/benchmark.py``) read as table rows: base / student / teacher with accuracy and its
CI, pass@k, cons@n, truncation share, no-closed-thinking share and tokens per answer. The report's
markdown table and W&B's scalars and table are built from these rows."""

from __future__ import annotations

from typing import Any

MODELS = ("base", "student", "teacher")
COLUMNS = ["suite", "model", "protocol", "n", "n_samples", "accuracy", "ci_low", "ci_high", "pass_at_k", "cons_at_n",
           "truncation_share", "no_closed_thinking_share", "tokens_per_answer", "backend"]


def benchmark_rows(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model of one ``metrics["benchmark"]`` block."""
    rows = []
    for model in MODELS:
        b = bench["models"].get(model)
        if b is None:
            continue
        ci = b["accuracy_ci"] or [None, None]
        be = (bench.get("backend") or {}).get(model) or {}
        rows.append({"suite": bench["suite"], "model": model, "protocol": bench["protocol"], "n": b["n"],
                     "n_samples": b["n_samples"], "accuracy": b["accuracy"], "ci_low": ci[0], "ci_high": ci[1],
                     "pass_at_k": dict(b["pass_at_k"]), "cons_at_n": b["cons_at_n"],
                     "truncation_share": b["truncation_share"],
                     "no_closed_thinking_share": b["no_closed_thinking_share"],
                     "tokens_per_answer": b["tokens_per_answer"], "backend": be.get("backend"),
                     "ifeval": b.get("ifeval")})
    return rows


def benchmark_scalars(bench: dict[str, Any]) -> dict[str, float]:
    """W&B scalars ``eval/bench/<suite>/<model>/<metric>``."""
    out: dict[str, float] = {}
    for r in benchmark_rows(bench):
        base = f"eval/bench/{r['suite']}/{r['model']}"
        for key in ("accuracy", "ci_low", "ci_high", "cons_at_n", "truncation_share", "no_closed_thinking_share",
                    "tokens_per_answer"):
            if r[key] is not None:
                out[f"{base}/{key}"] = float(r[key])
        for k, v in r["pass_at_k"].items():
            out[f"{base}/pass_at_{k}"] = float(v)
    live = bench.get("teacher_live")
    if live:
        out[f"eval/bench/{bench['suite']}/teacher/cost_usd"] = float(live["cost_usd"])
    return out


def table_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """``benchmark_rows`` as W&B table rows (``COLUMNS``)."""
    return [[r[c] if c != "pass_at_k" else ", ".join(f"@{k} {v:.3f}" for k, v in r[c].items()) for c in COLUMNS]
            for r in rows]
