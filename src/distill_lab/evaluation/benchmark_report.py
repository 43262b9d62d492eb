"""The benchmark table of the report and of W&B: base / student / teacher per public benchmark, with
accuracy and its CI, pass@k, cons@n, truncation share, no-closed-thinking share and tokens per answer."""

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


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def benchmark_markdown(rows: list[dict[str, Any]], live: list[dict[str, Any]] | None = None) -> str:
    """The "Public benchmarks" table (rows of ``benchmark_rows`` from one or more eval runs)."""
    lines = ["## Public benchmarks", "",
             "Accuracy: greedy, or with n samples the mean pass@1 (R1's protocol); CI: Wilson (greedy) or "
             "bootstrap over questions (sampled). An output cut by the token budget counts as wrong. "
             "cons@n: the majority answer (math answers grouped by value).", "",
             "| benchmark | model | backend | n × samples | accuracy [CI] | pass@k | cons@n | truncated | "
             "no closed thinking | tokens / answer |", "|" + "---|" * 10]
    for r in rows:
        ci = "" if r["ci_low"] is None else f" [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
        pk = ", ".join(f"@{k} {_pct(v)}" for k, v in r["pass_at_k"].items()) or "–"
        tok = "–" if r["tokens_per_answer"] is None else f"{r['tokens_per_answer']:.0f}"
        acc = f"{_pct(r['accuracy'])}{ci}"
        if r.get("ifeval"):
            acc += f" (loose {_pct(r['ifeval']['prompt_loose'])}, inst. {_pct(r['ifeval']['inst_strict'])})"
        lines.append(f"| {r['suite']} | {r['model']} | {r['backend'] or '–'} | {r['n']} × {r['n_samples']} | {acc} | "
                     f"{pk} | {_pct(r['cons_at_n'])} | {_pct(r['truncation_share'])} | "
                     f"{_pct(r['no_closed_thinking_share'])} | {tok} |")
    for t in live or []:
        lines.append("")
        lines.append(f"Teacher asked live on {t['suite']}: {t['answered']}/{t['requests']} answers, "
                     f"cost ${t['cost_usd']:.4f} (cap {'none' if t['max_cost_usd'] is None else '$' + format(t['max_cost_usd'], '.2f')}, "
                     f"worst case ${t['worst_case_usd']:.4f})" + (f"; stopped: {t['stopped']}" if t.get("stopped") else ""))
    return "\n".join(lines) + "\n"


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
