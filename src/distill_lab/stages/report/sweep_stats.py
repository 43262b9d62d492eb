"""A sweep's runs aggregated over seeds: one cell per (effort, size), or per combination of whatever else
was swept, and cost per accuracy point where the teacher was paid.

Accuracy and retention per split and capability category come from the runs' per-prompt answers
(``samples.jsonl``) with one interval over seeds and prompts (``stats.two_level_interval``: a two-level
bootstrap, Wilson where every seed agrees, clipped to the possible range; retention = student / teacher
paired on seeds and prompts; the SFT+RL student of pipeline runs with ``eval_rl/`` as ``student_rl``, its
figures computed from its samples as the SFT student's). A cell whose runs lack ``samples.jsonl`` falls back to the mean of the runs'
figures with a Student-t interval over seeds (``stats.seed_interval``), and its figures say so
(``method``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from statistics import mean
from typing import Any

import numpy as np

from distill_lab.stages.report.costs import cell_costs
from distill_lab.stages.report.families import CONTRASTS, MODELS, aggregate_families
from distill_lab.stages.report.samples import (
    RL_MODEL,
    Answers,
    FamilyAnswers,
    family_answers,
    run_answers,
    run_records,
)
from distill_lab.stages.report.sweep_runs import SPLITS, Run, cell_key, nested, other_swept
from distill_lab.stats import seed_interval, two_level_interval
from distill_lab.vocab import effort_rank

log = logging.getLogger(__name__)

# the models a cell reports: the SFT student, the same runs' SFT+RL student (``eval_rl/``, where the pipeline ran
# rl), the base and the teacher
ARMS = ("student", RL_MODEL, "base", "teacher")


def _table(answers: list[Answers], model: str, split: str, category: str | None = None,
           graded: bool = False) -> tuple[list[str], np.ndarray] | None:
    """[seed, prompt] of one model on the prompts every run answered (None where none)."""
    per_run = [{pid: (score if graded else c) for (m, s, pid), (cat, c, score) in a.items()
                if m == model and s == split and (category is None or cat == category)} for a in answers]
    ids = sorted(set.intersection(*(set(d) for d in per_run))) if per_run else []
    if not ids:
        return None
    return ids, np.array([[d[i] for i in ids] for d in per_run])


def _figures(answers: list[Answers], split: str, category: str | None, confidence: float
             ) -> dict[str, dict[str, Any]]:
    """Accuracy of each model and retention (student / teacher, on correctness and on score)."""
    out: dict[str, dict[str, Any]] = {}
    kw = dict(confidence=confidence)
    for model in ARMS:
        t = _table(answers, model, split, category)
        if t is not None:
            out[model] = two_level_interval([t[1]], "mean", **kw)
    for name, model, graded in (("retention", "student", False), ("score_retention", "student", True),
                                (f"{RL_MODEL}_retention", RL_MODEL, False)):  # the SFT+RL arm's: eval_rl/
        st, te = _table(answers, model, split, category, graded), _table(answers, "teacher", split, category,
                                                                         graded)
        if st is None or te is None:
            continue
        ids = sorted(set(st[0]) & set(te[0]))
        if ids:
            cols = [[ids_.index(i) for i in ids] for ids_ in (st[0], te[0])]
            out[name] = two_level_interval([st[1][:, cols[0]], te[1][:, cols[1]]], "ratio", **kw)
    return out


def aggregate(runs: list[Run], confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per (effort, size, other swept values): means over seeds, with one interval over seeds and
    prompts where the runs kept their answers (a t-interval over seeds where not)."""
    ok = [r for r in runs if r.status == "ok"]
    other = other_swept(ok)
    cells: dict[tuple, list[Run]] = defaultdict(list)
    for r in ok:
        cells[cell_key(r, other)].append(r)
    rows = []
    for (effort, size, rest), rs in sorted(cells.items(), key=lambda kv: (effort_rank(kv[0][0]),
                                                                          kv[0][1] or 0,
                                                                          tuple(v or "" for v in kv[0][2]))):
        row: dict[str, Any] = {"effort": effort, "size": size, **dict(zip(other, rest, strict=True)),
                               "seeds": sorted(r.seed for r in rs if r.seed is not None), "n_runs": len(rs)}
        answers = share_base([run_answers(r.path) for r in rs])
        if all(answers):
            for s in SPLITS:
                figs = _figures(answers, s, None, confidence)
                for model in ARMS:
                    if model in figs:
                        row[f"{model}_{s}_accuracy"] = figs[model]
                if "retention" in figs:
                    row[f"retention_{s}"] = figs["retention"]
                if f"{RL_MODEL}_retention" in figs:
                    row[f"{RL_MODEL}_retention_{s}"] = figs[f"{RL_MODEL}_retention"]
            cat_keys = sorted({(s, cat) for a in answers for (m, s, _), (cat, _, _) in a.items() if cat})
            cats_2l = {f"{s}/{cat}": figs for s, cat in cat_keys if (figs := _figures(answers, s, cat, confidence))}
            if cats_2l:
                row["categories"] = dict(sorted(cats_2l.items()))
        else:  # runs without samples.jsonl: what their metrics say, with a t-interval over seeds
            _over_seeds(row, rs, confidence)
        costs = [r.cost_usd for r in rs if r.cost_usd is not None]
        row["cost_usd"] = mean(costs) if costs else None
        acc = nested(row, "student_test_accuracy", "mean")
        base = nested(row, "base_test_accuracy", "mean")
        paid = row["cost_usd"] is not None and row["cost_usd"] > 0
        row["cost_per_point"] = row["cost_usd"] / (100 * acc) if paid and acc else None
        gain = (acc - base) if acc is not None and base is not None else None
        row["cost_per_gain_point"] = row["cost_usd"] / (100 * gain) if paid and gain and gain > 0 else None
        losses = [r.train_loss for r in rs if r.train_loss is not None]
        row["train_loss"] = mean(losses) if losses else None
        tokens = [r.train_tokens for r in rs if r.train_tokens is not None]
        row["train_tokens"] = mean(tokens) if tokens else None
        row.update(cell_costs(rs))  # teacher USD (paid / projected), FLOPs, wall time: report/costs.py
        fam_answers = share_base([run_family_answers(r) for r in rs])
        fam = (families_two_level(fam_answers, confidence) if all(fam_answers)
               else aggregate_families(rs, lambda v, lo, hi: seed_interval(v, confidence, lo, hi)))
        row.update({k: v for k, v in fam.items() if v})
        rows.append(row)
    return rows


def share_base(answers: list[Any]) -> list[Any]:
    """The base model's answers, measured in some of a cell's runs, given to the runs that skipped it
    (``eval.include_base=false``): the base is the same weights answering the same prompts greedily in every
    run of a cell (the prompts depend on ``recipe.seed`` only), so measuring it once is the same measurement
    as measuring it in every run, at a fraction of the eval time. Copied only where the runs that measured it
    agree answer for answer and the receiving run answered the same prompts; otherwise the answers are left
    as they are (the base then has no figure in the cell: never a silent mix of two different bases)."""
    if not all(answers):
        return answers
    have = [a for a in answers if any(k[0] == "base" for k in a)]
    if not have or len(have) == len(answers):
        return answers
    base = {k: v for k, v in have[0].items() if k[0] == "base"}
    if any({k: v for k, v in a.items() if k[0] == "base"} != base for a in have[1:]):
        log.warning("report: the base answered differently in two runs of one cell: not shared")
        return answers

    def prompts(a: Any, model: str) -> set[tuple[str, str]]:  # (split, prompt_id) answered by model
        return {(k[1], pid) for k, v in a.items() if k[0] == model
                for pid in (v if isinstance(v, dict) else (k[2],))}

    wanted = prompts(have[0], "base")
    out = [a if any(a is h for h in have) or prompts(a, "student") != wanted else {**a, **base} for a in answers]
    if any(not any(k[0] == "base" for k in a) for a in out):
        log.warning("report: some runs of a cell answered other prompts than the base: the base is not shared")
    return out


def _over_seeds(row: dict[str, Any], rs: list[Run], confidence: float) -> None:
    """The cell's figures from the runs' metrics only: mean and Student-t interval over seeds."""
    def st(vals: list[float], lo: float | None, hi: float | None) -> dict[str, Any]:
        return {**seed_interval(vals, confidence, lo, hi), "method": "t over seeds (no samples.jsonl)"}

    for model in ("student", "base", "teacher"):
        for s in SPLITS:
            vals = [v for r in rs if (v := r.accuracy.get(model, {}).get(s)) is not None]
            if vals:
                row[f"{model}_{s}_accuracy"] = st(vals, 0.0, 1.0)
    for s in SPLITS:
        vals = [r.retention.get(s) for r in rs if r.retention.get(s) is not None]
        if vals:
            row[f"retention_{s}"] = st(vals, 0.0, None)
    cats: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rs:
        for s, by_cat in r.categories.items():
            for cat, vals in by_cat.items():
                for what, v in vals.items():
                    if v is not None:
                        cats[f"{s}/{cat}"][what].append(v)
    if cats:
        row["categories"] = {k: {what: st(v, 0.0, None if what.endswith("retention") else 1.0)
                                 for what, v in d.items()} for k, d in sorted(cats.items())}


def run_family_answers(run: Run) -> FamilyAnswers | None:
    """The run's greedy answers per model, split and task family (``samples.jsonl``), None without them."""
    records = run_records(run.path)
    return (family_answers(records) or None) if records is not None else None


def _family_table(answers: list[FamilyAnswers], key: tuple[str, str, str], k: int) -> np.ndarray | None:
    per_run = [a.get(key) or {} for a in answers]
    ids = sorted(set.intersection(*(set(d) for d in per_run)))
    if not ids:
        return None
    y = np.array([[d[i][k] for i in ids] for d in per_run])
    return None if np.isnan(y).all() else y


PAIRED = "paired on items (pair_id)"
UNPAIRED = "unpaired (answers carry no shared pair_id)"


def _by_pair(answers: list[FamilyAnswers], key: tuple[str, str, str]) -> list[dict[str, float]] | None:
    """Per run, correctness keyed by each answer's pair_id; None where an answer carries none (or two answers
    of one side share one: not one item per pair)."""
    out = []
    for a in answers:
        d = a.get(key) or {}
        ids = [v[3] if len(v) > 3 else None for v in d.values()]  # 3-tuples: answers made before pair_id
        if not ids or None in ids or len(set(ids)) != len(ids):
            return None
        out.append({pid: v[0] for pid, v in zip(ids, d.values(), strict=True)})
    return out


def paired_tables(answers: list[FamilyAnswers], key_a: tuple[str, str, str], key_b: tuple[str, str, str]
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """[seed, item] correctness of both sides on the items (pair_id) every run answered on both sides, columns
    aligned item by item; None when the answers are not paired by pair_id."""
    pa, pb = _by_pair(answers, key_a), _by_pair(answers, key_b)
    if pa is None or pb is None:
        return None
    ids = sorted(set.intersection(*(set(x) & set(y) for x, y in zip(pa, pb, strict=True))))
    if not ids:
        return None
    return np.array([[x[i] for i in ids] for x in pa]), np.array([[y[i] for i in ids] for y in pb])


def families_two_level(answers: list[FamilyAnswers], confidence: float) -> dict[str, Any]:
    """Per-family figures and the probes' contrasts of one cell with one interval over seeds and prompts
    (``stats.two_level_interval``), in the shape of ``families.aggregate_families``: accuracy, score and
    format per model, and each contrast of ``families.CONTRASTS``, the seeds paired. A contrast whose two
    sides are the same items (the answers share ``pair_id``: an edge case with and without its hint) is
    analysed paired on items, seeds and items resampled together, so the items' difficulty cancels; other
    contrasts (two families, or two splits) compare different prompts, resampled independently. Each
    contrast names which (``pairing``)."""
    fams: dict[str, dict[str, Any]] = defaultdict(dict)
    keys = sorted({k for a in answers for k in a})
    for model, split, task in keys:
        for what, k in (("accuracy", 0), ("score", 1), ("format", 2)):
            y = _family_table(answers, (model, split, task), k)
            if y is not None:
                fams[f"{split}/{task}"][f"{model}_{what}"] = two_level_interval([y], "mean", confidence=confidence)
    cons: dict[str, dict[str, Any]] = {}
    for name, (fa, sa), (fb, sb), _ in CONTRASTS:
        for model in MODELS:
            pair = paired_tables(answers, (model, sa, fa), (model, sb, fb))
            if pair is not None:
                st = two_level_interval(list(pair), "diff", paired_prompts=True, confidence=confidence)
                pairing = PAIRED
            else:
                ya, yb = _family_table(answers, (model, sa, fa), 0), _family_table(answers, (model, sb, fb), 0)
                if ya is None or yb is None:
                    continue
                st = two_level_interval([ya, yb], "diff", paired_prompts=False, confidence=confidence)
                pairing = UNPAIRED
            if st is not None:
                cons.setdefault(name, {})[model] = {**st, "pairing": pairing}
    return {"families": dict(sorted(fams.items())), "contrasts": cons}
