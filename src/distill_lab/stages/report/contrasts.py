"""Contrasts of a sweep with two intervals: over the prompts and over the seeds.

Every run of a sweep answers the same held-out prompts (the prompt pool depends on ``recipe.seed``
only), and each run's ``samples.jsonl`` holds whether each answer was right. A contrast compares two
sets of measurements in pairs (runs matched on every other setting and the seed), and reports:

- the mean difference in accuracy (points);
- a bootstrap interval over prompts: the prompts are resampled with replacement, the same resample in
  every run (so a paired contrast stays paired), and the difference recomputed (prompt-sampling
  variance: what another draw of held-out prompts would give);
- a Student-t interval over the pairs (training-seed variance, and the other settings pooled).

An interval that excludes 0 in both separates the two at this budget. The contrasts reported:

- efforts: ``high - low`` (and the other two pairs) of student accuracy, pooled over sizes and per size,
  pairs matched on size and seed, when ``teacher.effort`` is swept;
- sizes: largest ``-`` smallest dataset, pooled over efforts, pairs matched on effort and seed, when
  ``recipe.size`` is swept;
- categories: adjacent capability categories in the seed document's order (style, format, knowledge,
  reasoning, edge cases) within each run, student accuracy (different prompts on each side: two
  independent resamples), and ``distilled - base`` per category where the base was evaluated (also on the
  families' graded scores where they differ from correctness: the voice of ``style_rules``, the content of
  ``json_fields`` / ``sorted_words``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from distill_lab.stages.report.tables import markdown_table
from distill_lab.stats import seed_interval

CATEGORY_ORDER = ("style", "format", "knowledge", "reasoning", "edge_case")
EFFORT_PAIRS = (("high", "low"), ("medium", "low"), ("high", "medium"))
N_BOOT = 2000

# (model, split, prompt_id) -> (the prompt's category, correct 1.0 / 0.0, the family's graded score)
Answers = dict[tuple[str, str, str], tuple[str, float, float]]


def read_answers(eval_dir: Path) -> Answers | None:
    """The greedy answers of one eval (``samples.jsonl``), or None when the eval wrote none."""
    p = Path(eval_dir) / "samples.jsonl"
    if not p.is_file():
        return None
    out: Answers = {}
    with p.open() as f:
        for line in f:
            s = json.loads(line)
            if s.get("kind", "greedy") == "greedy" and s.get("sample_index", 0) == 0:
                correct = float(bool(s["correct"]))
                score = s.get("score")
                out[(s["model"], s["split"], s["prompt_id"])] = (s.get("category") or "", correct,
                                                                 correct if score is None else float(score))
    return out


def _select(ans: Answers, model: str, split: str, category: str | None = None,
            graded: bool = False) -> dict[str, float]:
    """Correctness (or, ``graded``, the family's score) per prompt of one model, split and category."""
    return {pid: (score if graded else c) for (m, s, pid), (cat, c, score) in ans.items()
            if m == model and s == split and (category is None or cat == category)}


def contrast(pairs: list[tuple[dict[str, float], dict[str, float]]], *, paired: bool, confidence: float = 0.95,
             seed: int = 0) -> dict[str, Any] | None:
    """Mean of ``acc(a) - acc(b)`` over ``pairs``, with a bootstrap interval over prompts and a t-interval
    over the pairs. ``paired``: both sides answered the same prompts (one resample for both)."""
    pairs = [(a, b) for a, b in pairs if a and b]
    if not pairs:
        return None
    if paired:
        ids_a = ids_b = sorted(set.intersection(*(set(a) & set(b) for a, b in pairs)))
    else:
        ids_a = sorted(set.intersection(*(set(a) for a, _ in pairs)))
        ids_b = sorted(set.intersection(*(set(b) for _, b in pairs)))
    if not ids_a or not ids_b:
        return None
    a = np.array([[x[i] for i in ids_a] for x, _ in pairs])  # [pairs, prompts]
    b = np.array([[y[i] for i in ids_b] for _, y in pairs])
    per_pair = a.mean(axis=1) - b.mean(axis=1)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, len(ids_a), (N_BOOT, len(ids_a)))
    ib = ia if paired else rng.integers(0, len(ids_b), (N_BOOT, len(ids_b)))
    boot = a[:, ia].mean(axis=(0, 2)) - b[:, ib].mean(axis=(0, 2))
    tail = (1 - confidence) / 2
    over_pairs = seed_interval(list(per_pair), confidence, -1.0, 1.0)
    return {"mean": float(per_pair.mean()), "ci_prompts": [float(np.quantile(boot, tail)),
                                                           float(np.quantile(boot, 1 - tail))],
            "ci_pairs": over_pairs["ci"], "n_pairs": len(pairs), "n_prompts": [len(ids_a), len(ids_b)]}


def _label(run: Any, keys: list[str]) -> tuple:
    return tuple(run.params.get(k) for k in keys)


def sweep_contrasts(runs: list[Any], swept: list[str], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Every contrast the sweep's design allows (see the module docstring), as rows for the report."""
    ok = [r for r in runs if r.status == "ok"]
    answers = {r.path: read_answers(Path(r.path) / "eval") or read_answers(Path(r.path)) for r in ok}
    ok = [r for r in ok if answers[r.path]]
    splits = sorted({s for r in ok for (_, s, _) in answers[r.path]}, key=lambda s: (s != "test", s))
    rows: list[dict[str, Any]] = []

    def add(kind: str, what: str, where: str, split: str, pairs, paired: bool) -> None:
        st = contrast(pairs, paired=paired, confidence=confidence)
        if st is not None:
            rows.append({"kind": kind, "contrast": what, "within": where, "split": split, **st})

    rest = [k for k in swept if k not in ("teacher.effort", "recipe.size", "seed")]
    if "teacher.effort" in swept:
        by: dict[tuple, Any] = {(r.effort, r.size, r.seed, _label(r, rest)): r for r in ok}
        sizes = sorted({r.size for r in ok if r.size is not None})
        for hi, lo in EFFORT_PAIRS:
            keys = [(k[1], k[2], k[3]) for k in by if k[0] == hi and (lo, *k[1:]) in by]
            for split in splits:
                def pick(keys, hi=hi, lo=lo, split=split):
                    return [(_select(answers[by[(hi, *k)].path], "student", split),
                             _select(answers[by[(lo, *k)].path], "student", split)) for k in keys]
                add("effort", f"{hi} - {lo}", "all sizes", split, pick(keys), True)
                for size in sizes if len(sizes) > 1 else ():
                    add("effort", f"{hi} - {lo}", f"size {size}", split, pick([k for k in keys if k[0] == size]), True)
    if "recipe.size" in swept:
        by = {(r.size, r.effort, r.seed, _label(r, rest)): r for r in ok}
        sizes = sorted({r.size for r in ok if r.size is not None})
        if len(sizes) > 1:
            big, small = sizes[-1], sizes[0]
            keys = [k[1:] for k in by if k[0] == big and (small, *k[1:]) in by]
            for split in splits:
                add("size", f"{big} - {small} rows", "all efforts", split,
                    [(_select(answers[by[(big, *k)].path], "student", split),
                      _select(answers[by[(small, *k)].path], "student", split)) for k in keys], True)
    cells: dict[tuple, list[Any]] = defaultdict(list)
    for r in ok:
        cells[(r.effort, r.size, r.student, _label(r, rest))].append(r)
    for (effort, size, student, _), rs in cells.items():
        where = ", ".join(str(x) for x in (student, effort, size) if x is not None)
        cats = {cat for r in rs for (cat, _, _) in answers[r.path].values()}
        order = [c for c in CATEGORY_ORDER if c in cats]
        for split in splits:
            for c1, c2 in zip(order, order[1:], strict=False):
                add("category", f"{c1} - {c2}", where, split,
                    [(_select(answers[r.path], "student", split, c1), _select(answers[r.path], "student", split, c2))
                     for r in rs], False)
            if any(m == "base" for r in rs for (m, _, _) in answers[r.path]):
                for c in order:
                    plain, graded = ([(_select(answers[r.path], "student", split, c, graded=g),
                                       _select(answers[r.path], "base", split, c, graded=g)) for r in rs]
                                     for g in (False, True))
                    add("distilled - base", c, where, split, plain, True)
                    if any(g[0] != p[0] for g, p in zip(graded, plain, strict=True)):  # the student's scores differ
                        add("distilled - base, graded score", c, where, split, graded, True)
    return rows


def contrasts_markdown(rows: list[dict[str, Any]], confidence: float) -> list[str]:
    if not rows:
        return []

    def pts(ci):
        return "–" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"

    def excludes_0(ci) -> bool:
        return bool(ci) and (ci[0] > 0 or ci[1] < 0)

    def sep(r):  # one pair (one seed) has no interval over pairs: say what the prompts alone tell
        if r["ci_pairs"] is None:
            return "over prompts only: " + ("yes" if excludes_0(r["ci_prompts"]) else "no")
        return "yes" if excludes_0(r["ci_prompts"]) and excludes_0(r["ci_pairs"]) else "no"

    def prompts(r):  # one count when both sides answered the same prompts
        n = r["n_prompts"]
        return n[0] if n[0] == n[1] else f"{n[0]} / {n[1]}"

    lines = ["", "## Contrasts with intervals over prompts and over seeds", "",
             "Student accuracy differences in points (the 'graded score' rows: the families' scores): "
             f"mean over the pairs of runs (matched on the other settings "
             f"and the seed), a {int(confidence * 100)}% bootstrap interval over prompts (the same resample in every "
             f"run) and a Student-t interval over the pairs. 'separated': both intervals exclude 0. "
             "One pair (one seed) has the interval over prompts only (`report/contrasts.py`).", ""]
    lines += markdown_table(
        ["kind", "contrast", "within", "split", "difference (pt)", "over prompts", "over pairs", "pairs", "prompts",
         "separated"],
        ([r["kind"], r["contrast"], r["within"], r["split"], f"{100 * r['mean']:+.1f}", pts(r["ci_prompts"]),
          pts(r["ci_pairs"]), r["n_pairs"], prompts(r), sep(r)] for r in rows))
    return lines
