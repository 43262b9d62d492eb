"""The report's "Public benchmarks" table (rows from ``artifacts.benchmark.benchmark_rows``)."""

from __future__ import annotations

from typing import Any


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
