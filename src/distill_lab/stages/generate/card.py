"""The dataset card: ``README.md`` in the dataset folder, plus ``thinking_length.png``.

``write_card(rows, out_dir, *, recipe_stats, filters, tokenizer=None) -> Path`` writes
  - sources and the recipe mix (from ``recipe_stats``: ``build_problems(...).stats``),
  - counts per family / category x split (from the rows themselves), and the training dose per family
    (train rows, supervised thinking + answer length, with the recipe's dose settings),
  - prompt / answer / thinking length statistics per teacher effort (tokens with ``tokenizer``,
    else whitespace words; the unit is stated),
  - the filters applied and how many rows each removed (``filters``: the generate stage's outcome
    counts, e.g. {"kept": 380, "max_tokens": 4}; plus the recipe's hygiene counts),
  - any shortfall of the mix, the effort mix (``recipe.effort_mix``: shares, rule, prompts per effort),
    and the cost (USD and billed tokens), in total and per teacher effort,
  - a PNG histogram of thinking lengths by effort.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from distill_lab.vocab import SPLITS

SPLIT_ORDER = (*SPLITS, "rejected")
HISTOGRAM = "thinking_length.png"


def _length_fn(tokenizer: Any | None) -> tuple[Callable[[str], int], str]:
    if tokenizer is None:
        return (lambda s: len(s.split())), "words"

    def count(s: str) -> int:
        return len(tokenizer(s, add_special_tokens=False)["input_ids"]) if s else 0

    return count, "tokens"


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0, "mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0.0}
    s = sorted(values)
    return {"n": len(s), "mean": statistics.fmean(s), "median": float(statistics.median(s)),
            "p95": float(s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]), "max": float(s[-1])}


def _effort(row: dict[str, Any]) -> str:
    t = row.get("teacher") or {}
    return str(t.get("effort") or "n/a")


def length_stats(rows: Iterable[dict[str, Any]], tokenizer: Any | None = None
                 ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, list[int]], str]:
    """Per effort: summaries of prompt / answer / thinking lengths; thinking lengths per effort; the unit."""
    count, unit = _length_fn(tokenizer)
    by: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"prompt": [], "answer": [], "thinking": []})
    for r in rows:
        msgs = r["messages"]
        e = by[_effort(r)]
        e["prompt"].append(sum(count(m.get("content") or "") for m in msgs[:-1]))
        e["answer"].append(count(msgs[-1].get("content") or ""))
        e["thinking"].append(count(msgs[-1].get("reasoning_content") or ""))
    stats = {eff: {k: _summary(v) for k, v in d.items()} for eff, d in sorted(by.items())}
    return stats, {eff: d["thinking"] for eff, d in sorted(by.items())}, unit


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _by_split(rows: list[dict[str, Any]], key: str) -> tuple[list[str], list[list[Any]]]:
    c = Counter((r[key], r["split"]) for r in rows)
    splits = [s for s in SPLIT_ORDER if any(k[1] == s for k in c)] + sorted({k[1] for k in c} - set(SPLIT_ORDER))
    names = sorted({k[0] for k in c})
    body = [[n, *[c[(n, s)] for s in splits], sum(c[(n, s)] for s in splits)] for n in names]
    body.append(["**total**", *[sum(c[(n, s)] for n in names) for s in splits], len(rows)])
    return [key, *splits, "total"], body


def dose_per_family(rows: Iterable[dict[str, Any]], tokenizer: Any | None = None
                    ) -> tuple[dict[str, dict[str, int]], str]:
    """Train rows per family and the length of what training supervises (the assistant's thinking and
    answer), in tokens with ``tokenizer``, else words; the unit. The train stage's summary has the exact
    supervised tokens of the student's tokenizer (``dose_per_family``)."""
    count, unit = _length_fn(tokenizer)
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.get("split") != "train":
            continue
        last = r["messages"][-1]
        d = out.setdefault(str(r.get("task")), {"rows": 0, "supervised": 0})
        d["rows"] += 1
        d["supervised"] += count(last.get("content") or "") + count(last.get("reasoning_content") or "")
    return dict(sorted(out.items())), unit


def dose_section(rows: list[dict[str, Any]], tokenizer: Any | None, recipe_stats: dict[str, Any]) -> list[str]:
    """The card's "Training dose per family" section (nothing when the dataset has no train rows)."""
    dose, unit = dose_per_family(rows, tokenizer)
    if not dose:
        return []
    total = sum(d["supervised"] for d in dose.values()) or 1
    settings = recipe_stats.get("dose") or {}
    lines = ["## Training dose per family", "",
             f"Train rows and the supervised text (thinking + answer, {unit}) per family; recipe.match_dose="
             f"{settings.get('match_dose')}, recipe.edge_case_share={settings.get('edge_case_share')}.", ""]
    body = [[fam, d["rows"], d["supervised"], f"{100 * d['supervised'] / total:.1f}"] for fam, d in dose.items()]
    return [*lines, *_table(["family", "train rows", f"supervised {unit}", "share of supervised %"], body), ""]


def plot_thinking_hist(thinking: dict[str, list[int]], unit: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    top = max((max(v) for v in thinking.values() if v), default=1) or 1
    bins = [top * i / 30 for i in range(31)]
    for eff, vals in thinking.items():
        ax.hist(vals, bins=bins, alpha=0.55, label=f"{eff} (n={len(vals)})")
    ax.set_xlabel(f"thinking length ({unit})")
    ax.set_ylabel("rows")
    ax.set_title("Thinking length by teacher effort")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_card(rows: list[dict[str, Any]], out_dir: str | Path, *, recipe_stats: dict[str, Any] | None,
               filters: dict[str, Any] | None, tokenizer: Any | None = None, title: str | None = None) -> Path:
    """Write ``README.md`` and ``thinking_length.png`` into ``out_dir``; return the README's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rs = recipe_stats or {}
    lines = [f"# {title or 'distill_lab dataset'}", "",
             f"{len(rows)} rows. Files: `rows.jsonl` (every split), `hf/` (a `datasets.DatasetDict` by split), "
             f"`{HISTOGRAM}`.", ""]

    teachers = Counter(f"{(r.get('teacher') or {}).get('provider')}/{(r.get('teacher') or {}).get('model')}"
                       for r in rows)
    lines += ["## Sources", ""]
    lines += [f"- teacher `{t}`: {n} rows" for t, n in sorted(teachers.items())]
    for m in rs.get("members", []):
        lines.append(f"- recipe member `{m['member']}`, weight {m['weight']}")
    for label, s in (rs.get("sources") or {}).items():
        lines.append(f"- `{label}`: {s['records']} records read, {s['bad_skipped']} bad skipped, "
                     f"usable per split {s['usable']}")
    if "seed" in rs:
        lines.append(f"- recipe seed {rs['seed']} (the prompt pool depends on the recipe only, not on the teacher)")
    lines.append("")

    for key, head in (("task", "Counts per family"), ("category", "Counts per category")):
        header, body = _by_split(rows, key)
        lines += [f"## {head}", "", *_table(header, body), ""]

    lines += dose_section(rows, tokenizer, rs)
    stats, thinking, unit = length_stats(rows, tokenizer)
    lines += [f"## Lengths per teacher effort ({unit})", ""]
    body = []
    for eff, d in stats.items():
        for part in ("prompt", "answer", "thinking"):
            s = d[part]
            body.append([eff, part, s["n"], f"{s['mean']:.1f}", f"{s['median']:.0f}", f"{s['p95']:.0f}",
                         f"{s['max']:.0f}"])
    lines += [*_table(["effort", "part", "rows", "mean", "median", "p95", "max"], body), "",
              f"![thinking length by effort]({HISTOGRAM})", ""]

    lines += ["## Filters", ""]
    frows = [[k, v] for k, v in sorted((filters or {}).items())]
    frows += [[f"recipe: {k}", v] for k, v in sorted((rs.get("filters") or {}).items())]
    lines += _table(["filter / outcome", "rows"], frows) if frows else ["No filter removed anything."]
    lines.append("")
    cov = rs.get("coverage") or {}
    if cov:
        lines += ["## Coverage of held-out needs", ""]
        for fam, c in sorted(cov.items()):
            lines.append(f"- {fam}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in c.items()))
        lines.append("")
    short = {s: v for s, v in (rs.get("shortfall") or {}).items() if v.get("realised", 0) < v.get("requested", 0)}
    if short:
        lines += ["## Shortfall", ""]
        for s, v in short.items():
            lines.append(f"- {s}: {v['realised']} of {v['requested']} (ran short: {', '.join(v['short'])})")
        lines.append("")

    mix = rs.get("effort_mix")
    if mix:
        lines += ["## Effort mix", "",
                  f"- `recipe.effort_mix={mix['spec']}`: {mix['label']}, assigned by `{mix['rule']}`"
                  + (", every train prompt at every effort" if mix.get("duplicate") else
                     ", one effort per train prompt (no prompt twice)"),
                  f"- held-out prompts answered at `{mix['held_out_effort']}` (the mix's most detailed effort)"]
        lines += [f"- {split}: " + ", ".join(f"{e} {n}" for e, n in counts.items())
                  for split, counts in mix.get("realised", {}).items()]
        lines.append("")
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        u = {k: v for k, v in (r.get("usage") or {}).items() if isinstance(v, int)}
        per[_effort(r)].update({"rows": 1, **u})
        per[_effort(r)]["cost_micro_usd"] += round(float(r.get("cost_usd") or 0.0) * 1e6)
    lines += ["## Cost and tokens per effort", "",
              *_table(["effort", "rows", "cost USD", "input tokens", "output tokens", "thinking tokens"],
                      [[e, c["rows"], f"{c['cost_micro_usd'] / 1e6:.4f}", c["input_tokens"], c["output_tokens"],
                        c["thinking_tokens"]] for e, c in sorted(per.items())]), ""]

    usage: Counter[str] = Counter()
    for r in rows:
        usage.update({k: v for k, v in (r.get("usage") or {}).items() if isinstance(v, int)})
    cost = sum(float(r.get("cost_usd") or 0.0) for r in rows)
    lines += ["## Cost", "", f"- total: ${cost:.4f}"]
    lines += [f"- {k}: {v}" for k, v in sorted(usage.items()) if v]
    lines.append("")

    plot_thinking_hist(thinking, unit, out / HISTOGRAM)
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
