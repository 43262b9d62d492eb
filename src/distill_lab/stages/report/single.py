"""The ``report`` stage: eval results -> ``report.md``, ``report.json`` and PNG plots.

Reads the ``metrics.json`` (and ``samples.jsonl`` for example failures) of each ``report.eval_dirs``
entry and writes, per eval run: accuracy of base / student / teacher per split (Wilson CIs), gain
(student - base) and retention (student / teacher) per split and capability category with paired
bootstrap CIs, the seed document's retention figures beside ours, sampling and format figures, and
example failures per category (prompt, reference, teacher answer, student answer). A pipeline's ``eval/``
with an ``eval_rl/`` beside it (``rl.enabled=true``) first gets base, SFT, SFT+RL and teacher side by side
with the paired SFT+RL - SFT contrast (``rl_compare.py``).

``load_eval_metrics(dir)`` is the loader other aggregators (sweeps) reuse.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.metrics import SAMPLE_METRICS, EvalMetrics
from distill_lab.errors import ConfigError
from distill_lab.stages.common import StageResult
from distill_lab.stages.report.common import SEED_RETENTION, bars, retention_by_category_plot, seed_cell

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)

# The seed document ("Quantifying the gap"): retention vs teacher after SFT distillation, no method given.


def load_eval_metrics(path: str | Path) -> EvalMetrics:
    """``metrics.json`` of an eval run directory (or the file itself), read as the typed record."""
    return EvalMetrics.load(path)


def load_samples(path: str | Path) -> list[dict[str, Any]]:
    """``samples.jsonl`` of an eval run directory, normalised (``report/samples.py``); [] when absent."""
    from distill_lab.stages.report.samples import SAMPLES, read_samples

    f = Path(path) / SAMPLES
    return read_samples(f) if f.is_file() else []


# --------------------------------------------------------------------------------------- content
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _signed_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} pt"


def _signed_ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def summarize(m: EvalMetrics) -> dict[str, Any]:
    """The numbers a report shows, pulled out of one metrics record."""
    splits = m.splits()
    acc: dict[str, dict[str, Any]] = {}
    for s in splits:
        acc[s] = {}
        for model in m.model_names():
            b = m.block(model, s)
            if b:
                acc[s][model] = {"accuracy": b["accuracy"], "ci": b["accuracy_ci"], "n": b["n"],
                                 "correct": b["correct"],
                                 "truncated": b.get("truncated_share", b.get("runaway_share")),
                                 "unclosed_thinking": b.get("unclosed_thinking_share",
                                                            1 - b["format"]["think_closed"] if b.get("format") else None)}
    # retention of the distilled student; of the base model when the eval had no adapter
    ret_model = m.retention_model()

    def by_split(stat) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for s in splits:
            if stat(s, None) is not None:
                out[s] = {"all": stat(s, None), **{c: stat(s, c) for c in m.categories(s) if stat(s, c) is not None}}
        return out

    budgets = m.extra.get("budgets") or {}
    return {"splits": splits, "accuracy": acc, "retention_model": ret_model, "budgets": budgets,
            "budget_cut": [s for s in splits if (budgets.get(s) or {}).get("below_teacher")],
            "retention": by_split(lambda s, c: m.retention_stat(ret_model, s, c)),
            "score_retention": by_split(lambda s, c: m.retention_stat(ret_model, s, c, score=True)),
            "gain": by_split(lambda s, c: m.gain_stat(s, c))}


def paired_intervals(summ: dict[str, Any], samples: list[dict[str, Any]], confidence: float) -> None:
    """Replace the eval's bootstrap intervals of retention, score retention and gain (per split and category)
    by ``stats.two_level_interval`` on the greedy answers of ``samples``: with one run that is a bootstrap
    over the paired prompts, calibrated to Student's t, with Newcombe / Wilson intervals where every
    resample agrees (never zero width) and clipped to the range (retention <= 1 / teacher accuracy, gain in
    [-1, 1]). Without samples the eval's intervals stay (``ci_method`` says which)."""
    import numpy as np

    from distill_lab.stages.report.samples import answers
    from distill_lab.stats import two_level_interval

    greedy: dict[tuple[str, str], dict[str, tuple[str, float, float]]] = {}
    for (model, split, pid), a in answers(samples).items():
        greedy.setdefault((model, split), {})[pid] = a

    def arms(a: str, b: str, split: str, cat: str, graded: bool):
        ga, gb = greedy.get((a, split), {}), greedy.get((b, split), {})
        ids = sorted(pid for pid in set(ga) & set(gb) if cat == "all" or ga[pid][0] == cat)
        k = 2 if graded else 1
        return (np.array([[ga[i][k] for i in ids]]), np.array([[gb[i][k] for i in ids]])) if ids else None

    rm = summ["retention_model"]
    for key, (a, b, stat, graded) in {"retention": (rm, "teacher", "ratio", False),
                                      "score_retention": (rm, "teacher", "ratio", True),
                                      "gain": ("student", "base", "diff", False)}.items():
        for split, cats in summ[key].items():
            for cat, st in cats.items():
                pair = arms(a, b, split, cat, graded)
                if pair is None:
                    continue
                got = two_level_interval(list(pair), stat, confidence=confidence)
                if got is not None and got["ci"] is not None:
                    st["ci"], st["ci_method"] = got["ci"], got["method"]


def failures(samples: list[dict[str, Any]], per_category: int, model: str = "student") -> list[dict[str, Any]]:
    """Up to ``per_category`` greedy failures of ``model`` per (split, category), with the teacher's
    answer and the base model's answer to the same prompt."""
    greedy = [r for r in samples if r.get("kind") == "greedy"]
    by_key = {(r["model"], r["prompt_id"]): r for r in greedy}
    if not any(r["model"] == model for r in greedy):
        model = "base"  # an eval without adapter: show the base model's failures
    out: list[dict[str, Any]] = []
    counts: dict[tuple[str, str], int] = {}
    for r in greedy:
        if r["model"] != model or r["correct"]:
            continue
        key = (r["split"], r["category"])
        if counts.get(key, 0) >= per_category:
            continue
        counts[key] = counts.get(key, 0) + 1
        t = by_key.get(("teacher", r["prompt_id"]))
        b = by_key.get(("base", r["prompt_id"])) if model != "base" else None
        out.append({"model": model, "split": r["split"], "category": r["category"], "task": r["task"],
                    "prompt": r["prompt"], "reference": r["reference"], "extracted": r["extracted"],
                    "output": r["output"], "runaway": r["runaway"], "think_unclosed": r["think_unclosed"],
                    "teacher_answer": t["answer"] if t else None, "teacher_correct": t["correct"] if t else None,
                    "base_output": b["output"] if b else None})
    return out


def _clip(text: str | None, n: int = 400) -> str:
    if text is None:
        return "–"
    text = text.strip()
    text = text if len(text) <= n else text[:n] + f" … (+{len(text) - n} chars)"
    return text.replace("```", "'''")


def find_train_dose(m: EvalMetrics, eval_dir: str | Path) -> dict[str, Any] | None:
    """The training dose per family of the run that trained the evaluated adapter: the train summary's
    ``dose_per_family`` in the manifest beside ``adapter_dir`` (a train run's ``adapter/``), else in the
    pipeline job's ``train/`` beside the eval folder. ``{"train_run", "dose"}``; None when no train run is
    found (an eval of the base model, or a train run moved or deleted since)."""
    from distill_lab.stages.report.sweep_runs import train_dose

    places = ([Path(m.adapter_dir).parent] if m.adapter_dir else []) + [Path(eval_dir).parent / "train"]
    for d in places:
        if (d / "manifest.json").is_file():
            return {"train_run": str(d), "dose": train_dose(d)}
    return None


def dose_lines(m: EvalMetrics, found: dict[str, Any] | None) -> list[str]:
    """The single report's training dose section (nothing for an eval without adapter)."""
    from distill_lab.stages.report.families import DOSE_HEADER, dose_cells
    from distill_lab.stages.report.tables import markdown_table

    if found is None:
        return ["", f"Training dose per family: the train run of adapter `{m.adapter_dir}` was not found."] \
            if m.adapter_dir else []
    if not found["dose"]:
        return ["", f"Training dose per family: the train run `{found['train_run']}` records none."]
    return ["", f"### Training dose per family (train run `{found['train_run']}`)", "",
            "Train rows and supervised tokens (the student's tokenizer: thinking + answer + end of turn) per "
            "family, from the train summary's `dose_per_family`.", "",
            *markdown_table(DOSE_HEADER, dose_cells(found["dose"]))]


def run_markdown(label: str, m: EvalMetrics, summ: dict[str, Any], fails: list[dict[str, Any]],
                 plots: list[str], train: dict[str, Any] | None = None) -> str:
    ec = m.eval
    lines = [f"## {label}", ""]
    lines.append(f"- student `{m.student}`, adapter `{m.adapter_dir}`, dataset `{m.dataset_dir}`")
    lines.append(f"- prompts per split: {m.prompts}; greedy decoding, max_new_tokens {ec.get('max_new_tokens')}, "
                 f"n_samples {ec.get('n_samples')} (temperature {ec.get('temperature')}, top_p {ec.get('top_p')}), "
                 f"confidence {ec.get('confidence')}, bootstrap {ec.get('bootstrap')} resamples")
    lines += budget_lines(m, summ)
    lines += ["", "### Accuracy by split (greedy; Wilson CI)", ""]
    present = m.model_names()
    rm = summ["retention_model"]
    gen = [x for x in present if x != "teacher"]  # the models that generated under the budget
    head = ("| split | n | " + " | ".join(present) + f" | gain (student − base) | retention ({rm} / teacher) | "
            + " | ".join(f"{x} truncated | {x} unclosed think" for x in gen) + " |")
    lines += [head, "|" + "---|" * (len(present) + 4 + 2 * len(gen))]
    for s in summ["splits"]:
        row = summ["accuracy"][s]
        n = next(iter(row.values()))["n"] if row else 0
        cells = [f"{_pct(row[x]['accuracy'])}{_ci(row[x]['ci'])}" if x in row else "–" for x in present]
        g = summ["gain"].get(s, {}).get("all")
        r = summ["retention"].get(s, {}).get("all")
        gcell = f"{_signed_pct(g['value'])}{_signed_ci(g['ci'])}" if g else "–"
        rcell = f"{_pct(r['value'])}{_ci(r['ci'])}" if r else "–"
        shares = [f"{_pct(row[x].get('truncated'))} | {_pct(row[x].get('unclosed_thinking'))}" if x in row
                  else "– | –" for x in gen]
        lines.append(f"| {s} | {n} | " + " | ".join(cells) + f" | {gcell} | {rcell} | " + " | ".join(shares) + " |")
    lines += ["", f"### Retention per capability category ({rm} / teacher; paired bootstrap CI)", "",
              f"| category | split | n | {rm} | teacher | retention | score retention | gain (student − base) "
              f"| seed's figure | {rm} truncated | {rm} unclosed think |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summ["splits"]:
        for cat, st in sorted(summ["retention"].get(s, {}).items()):
            if cat == "all":
                continue
            g = summ["gain"].get(s, {}).get(cat)
            gcell = f"{_signed_pct(g['value'])}{_signed_ci(g['ci'])}" if g else "–"
            sc = summ["score_retention"].get(s, {}).get(cat)
            scell = f"{_pct(sc['value'])}{_ci(sc['ci'])}" if sc else "–"
            lines.append(f"| {cat} | {s} | {st['n']} | {_pct(st['a_accuracy'])} | {_pct(st['b_accuracy'])} | "
                         f"{_pct(st['value'])}{_ci(st['ci'])} | {scell} | {gcell} | {seed_cell(cat)} | "
                         f"{_share(m, rm, s, cat, 'truncated_share')} | {_share(m, rm, s, cat, 'unclosed_thinking_share')} |")
    extra = [metric.label for metric in SAMPLE_METRICS]
    lines += ["", "### Sampling, format and length", "",
              "| model | split | pass@k | majority | format ok | think closed | has thinking | output tokens | "
              "thinking chars | " + " | ".join(extra) + " |", "|" + "---|" * (9 + len(extra))]
    for x in present:
        for s in summ["splits"]:
            b = m.block(x, s)
            if b is None:
                continue
            pk = ", ".join(f"@{k} {_pct(v)}" for k, v in b["pass_at_k"].items()) or "–"
            f, ln = b["format"], b["lengths"]
            tok = "–" if ln["output_tokens"] is None else f"{ln['output_tokens']:.0f}"
            th = "–" if ln["thinking_chars"] is None else f"{ln['thinking_chars']:.0f}"
            cells = " | ".join(metric.cell(b.get(metric.name)) for metric in SAMPLE_METRICS)
            lines.append(f"| {x} | {s} | {pk} | {_pct(b['majority_accuracy'])} | {_pct(f['compliant'])} | "
                         f"{_pct(f['think_closed'])} | {_pct(f['has_thinking'])} | {tok} | {th} | {cells} |")
    if plots:
        lines += ["", *[f"![{Path(p).stem}]({Path(p).name})" for p in plots]]
    lines += dose_lines(m, train)
    lines += ["", "### Example failures", ""]
    if not fails:
        lines.append("No failures (or no samples.jsonl) in this run.")
    for fl in fails:
        flags = ", ".join(x for x, on in (("runaway", fl["runaway"]), ("unclosed think", fl["think_unclosed"])) if on)
        lines += [f"**{fl['category']} / {fl['split']}** ({fl['task']}): {_clip(fl['prompt'], 200)}  ",
                  f"reference `{fl['reference']}`, {fl['model']} extracted `{fl['extracted']}`"
                  + (f" ({flags})" if flags else ""), "",
                  f"- teacher ({'correct' if fl['teacher_correct'] else 'wrong'}): {_clip(fl['teacher_answer'], 200)}",
                  f"- {fl['model']}: `{_clip(fl['output']).replace(chr(10), ' ⏎ ')}`"]
        if fl["base_output"] is not None:
            lines.append(f"- base: `{_clip(fl['base_output'], 200).replace(chr(10), ' ⏎ ')}`")
        lines.append("")
    return "\n".join(lines)


METHOD = """## Method

- Every model answers the same held-out prompts: `test` (the training distribution) and `ood`
  (beyond it). The teacher's answers are its dataset rows for those prompts; the students generate
  greedily with their chat template and thinking on, capped at `max_new_tokens`, stopping at end of turn.
  The budget per split is derived from the teacher's own answers (`eval.max_new_tokens=auto`: the longest,
  in the student's tokens, times `eval.budget_margin`); an output the budget ended before end of turn is
  "truncated": wrong, and never parsed for an answer. "Unclosed think" is an output whose thinking never closed.
- The thinking (`<think>…</think>`) is stripped before the task family's extractor and verifier see the
  answer; an answer only inside the thinking, or after an unclosed `<think>`, counts as wrong.
- "Score retention" uses each family's graded score in [0, 1] instead of pass/fail (the house-style
  family scores the share of style features that match the teacher's answer; elsewhere score = accuracy).
- Accuracy CIs are Wilson score intervals. Retention = student accuracy / teacher accuracy and gain =
  student − base, both on paired prompts, with bootstrap CIs over prompts (the same resampled prompts for
  both models; `stats.two_level_interval`: calibrated to Student's t, Newcombe / Wilson where every
  resample agrees, clipped to the possible range: retention at most 1 / teacher accuracy). pass@k is the unbiased estimator over n samples; majority vote breaks ties
  by first occurrence.
- The seed document's figures are printed beside ours for comparison; it states no method, model,
  or sample size, so they are not a like-for-like reference. Its "novel reasoning" corresponds best to
  our `reasoning` category on the `ood` split.
"""


RED = "🔴"


def _share(m: EvalMetrics, model: str, split: str, cat: str, key: str) -> str:
    b = m.block(model, split, cat) or {}
    return _pct(b.get(key))


def budget_lines(m: EvalMetrics, summ: dict[str, Any]) -> list[str]:
    """The budget of each split and how it was chosen; a red warning where it cut the teacher's own answers
    (``eval.allow_truncation``) or was never checked against them (an older run)."""
    budgets = summ.get("budgets") or {}
    bench = m.extra.get("benchmark")
    if bench:  # a public benchmark keeps its published budget (eval.suite.max_new_tokens)
        return [f"- max_new_tokens {bench.get('max_new_tokens')}: the benchmark's published budget (its truncation "
                "share is in the benchmark table)"]
    if not budgets:
        return [f"- {RED} **generation budget not checked against the teacher's answers** (max_new_tokens "
                f"{m.eval.get('max_new_tokens')}; a run from before eval.max_new_tokens=auto)"]
    parts = []
    for s, b in budgets.items():
        if b.get("teacher_longest") is None:
            parts.append(f"{s} {b['max_new_tokens']} (no teacher answers: unchecked)")
        elif b.get("source") == "auto":
            parts.append(f"{s} {b['max_new_tokens']} (auto: the teacher's longest answer {b['teacher_longest']} tokens "
                         f"x {b.get('margin')})")
        else:
            parts.append(f"{s} {b['max_new_tokens']} (explicit; the teacher's longest answer {b['teacher_longest']})")
    lines = [f"- max_new_tokens per split: {'; '.join(parts)}"]
    for s in summ.get("budget_cut") or []:
        b = budgets[s]
        if b.get("teacher_truncated"):  # students/budget.py: answers the teacher's own API cut (lower bounds)
            lines.append(f"- {RED} **Truncation allowed on {s}: {b['teacher_truncated']} of the teacher's answers were "
                         "cut by the teacher's API at teacher.max_tokens**, so the budget was measured on cut answers "
                         f"(a lower bound): a perfect student may be cut off on {s} (eval.allow_truncation=true).")
        if b.get("teacher_longest") is not None and b["max_new_tokens"] < b["teacher_longest"]:
            lines.append(f"- {RED} **Truncation allowed on {s}: max_new_tokens {b['max_new_tokens']} < "
                         f"{b['teacher_longest']}, the teacher's longest answer; it cuts "
                         f"{_pct(b.get('teacher_cut_share'))} of the teacher's own answers.** A perfect student would "
                         f"be cut off: accuracies on {s} are biased low (eval.allow_truncation=true).")
    return lines


# ------------------------------------------------------------------------------------------ plots
def make_plots(label: str, m: EvalMetrics, summ: dict[str, Any], out_dir: Path) -> list[str]:
    """Accuracy by split (base / student / teacher, Wilson bars) and retention per category
    (bootstrap bars, the seed's range as a grey band). Returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
    paths: list[str] = []
    present = m.model_names()
    splits = summ["splits"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(splits), 3.2))
    width = 0.8 / max(1, len(present))
    for i, x in enumerate(present):
        points = [(j, a["accuracy"], a["ci"]) for j, s in enumerate(splits)
                  if (a := summ["accuracy"][s].get(x)) and a["accuracy"] is not None]
        bars(ax, points, (i - (len(present) - 1) / 2) * width, width, label=x)
    ax.set_xticks(range(len(splits)), splits)
    ax.set_ylim(0, 1.05)
    for j, s in enumerate(splits):  # eval.allow_truncation: the budget cut the teacher's own answers here
        if s in (summ.get("budget_cut") or []):
            ax.axvspan(j - 0.45, j + 0.45, color="red", alpha=0.12, zorder=0)
            ax.text(j, 1.0, "budget < teacher", color="red", ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("accuracy (greedy)")
    ax.set_title(f"accuracy by split: {label}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = out_dir / f"accuracy_{safe}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))

    cats = {c for s in splits for c in summ["retention"].get(s, {}) if c != "all"}
    if cats:
        def stat(split: str, cat: str):
            st = summ["retention"].get(split, {}).get(cat)
            return (st["value"], st["ci"]) if st and st["value"] is not None else None

        p = retention_by_category_plot(cats, splits, stat, f"retention per category: {label}",
                                       out_dir / f"retention_{safe}.png")
        paths.append(str(p))
    return paths


# ------------------------------------------------------------------------------------------ stage
def _labels(dirs: list[str]) -> list[str]:
    names = [Path(d).name or str(d) for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"run{i}_{n}" for i, n in enumerate(names)]


def build_report(eval_dirs: list[str], out_dir: Path, *, failures_per_category: int = 3,
                 plots: bool = True) -> dict[str, Any]:
    """Write ``report.md``, ``report.json`` and the plots for ``eval_dirs`` into ``out_dir``."""
    from distill_lab.artifacts.benchmark import benchmark_rows
    from distill_lab.stages.report.benchmark import benchmark_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    runs, md = [], ["# Distillation report", ""]
    metrics = [load_eval_metrics(d) for d in eval_dirs]
    blocks = [m.extra["benchmark"] for m in metrics if m.extra.get("benchmark")]
    bench = [r for b in blocks for r in benchmark_rows(b)]
    if bench:  # public benchmarks first: one table across the eval runs
        live = [{"suite": b["suite"], **b["teacher_live"]} for b in blocks if b.get("teacher_live")]
        md.append(benchmark_markdown(bench, live))
    from distill_lab.stages.report import rl_compare

    side_by_side = []
    for d, m in zip(eval_dirs, metrics, strict=True):
        rl_dir = rl_compare.rl_partner(d)
        if rl_dir is not None:  # a pipeline run with rl: SFT, SFT+RL and base in one table
            conf = float(m.eval.get("confidence") or 0.95)
            rows = rl_compare.compare(d, rl_dir, conf)
            md += rl_compare.compare_markdown(rows, d, rl_dir, conf)
            side_by_side.append({"eval_dir": str(d), "eval_rl_dir": str(rl_dir), "rows": rows})
    for label, d, m in zip(_labels(eval_dirs), eval_dirs, metrics, strict=True):
        summ = summarize(m)
        samples = load_samples(d)
        paired_intervals(summ, samples, float(m.eval.get("confidence") or 0.95))
        fails = failures(samples, failures_per_category)
        pngs = make_plots(label, m, summ, out_dir) if plots else []
        train = find_train_dose(m, d)
        md.append(run_markdown(label, m, summ, fails, pngs, train))
        runs.append({"label": label, "eval_dir": str(d), "student": m.student,
                     "adapter_dir": m.adapter_dir, **summ, "failures": fails, "plots": pngs, "train_dose": train,
                     "benchmark": benchmark_rows(m.extra["benchmark"]) if m.extra.get("benchmark") else None})
    md.append(METHOD)
    report = {"schema_version": 1, "runs": runs, "sft_vs_rl": side_by_side,
              "seed_retention": {c: {"name": n, "low": lo, "high": hi} for c, (n, lo, hi) in SEED_RETENTION.items()}}
    (out_dir / "report.md").write_text("\n".join(md))
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def log_report(cfg: Config, report: dict[str, Any], run_dir: Path, out_dir: Path) -> None:
    """Tables, plots and the report file to the configured logger (W&B: tables and images)."""
    from distill_lab.tracking.loggers import open_run

    with open_run(cfg, "report", run_dir) as lg:
        if not lg.enabled:
            return
        for r in report["runs"]:
            rows = [[r["label"], s, model, a["accuracy"], *(a["ci"] or [None, None]), a["n"]]
                    for s, row in r["accuracy"].items() for model, a in row.items()]
            lg.log_table(f"report/{r['label']}/accuracy", ["run", "split", "model", "accuracy", "ci_low", "ci_high", "n"],
                         rows)
            rows = [[r["label"], s, c, st["value"], *(st["ci"] or [None, None]), st["n"]]
                    for s, cats in r["retention"].items() for c, st in cats.items()]
            lg.log_table(f"report/{r['label']}/retention",
                         ["run", "split", "category", "retention", "ci_low", "ci_high", "n"], rows)
            rows = [[f["split"], f["category"], f["prompt"], f["reference"], f["teacher_answer"], f["output"]]
                    for f in r["failures"]]
            lg.log_table(f"report/{r['label']}/failures",
                         ["split", "category", "prompt", "reference", "teacher_answer", "student_output"], rows)
            if r.get("benchmark"):
                from distill_lab.artifacts.benchmark import COLUMNS, table_rows

                lg.log_table(f"report/{r['label']}/benchmark", COLUMNS, table_rows(r["benchmark"]))
            for p in r["plots"]:
                lg.log_image(f"report/{r['label']}/{Path(p).stem}", p)
        lg.log_artifact(out_dir / "report.md", "report", "report")


def run_report(cfg: Config, run_dir: Path) -> StageResult:
    """The ``report`` stage over ``report.eval_dirs``."""
    rc = cfg.report
    if not rc.eval_dirs:
        raise ConfigError("report.eval_dirs: required (one or more eval run directories with metrics.json)")
    out_dir = Path(rc.output_dir) if rc.output_dir else Path(run_dir)
    report = build_report(list(rc.eval_dirs), out_dir, failures_per_category=rc.failures_per_category,
                          plots=rc.plots)
    log_report(cfg, report, Path(run_dir), out_dir)
    arts = {"report_md": str(out_dir / "report.md"), "report_json": str(out_dir / "report.json")}
    for r in report["runs"]:
        for p in r["plots"]:
            arts[f"plot_{Path(p).stem}"] = p
    summary = {r["label"]: {s: {m: a["accuracy"] for m, a in row.items()} for s, row in r["accuracy"].items()}
               for r in report["runs"]}
    log.info("report: %s", out_dir / "report.md")
    return StageResult(artifacts=arts, summary={"accuracy": summary})
