"""Contrasts of a sweep with one interval over the seeds and the prompts.

Every run of a sweep answers the same held-out prompts (the prompt pool depends on ``recipe.seed``
only), and each run's ``samples.jsonl`` holds whether each answer was right. A contrast compares two
sets of measurements in pairs (runs matched on every other setting and the seed), and reports the mean
difference in accuracy (points) with one interval (``stats.two_level_interval``) that resamples seeds
and prompts together: the pairs of one seed move together (at seed 0 every size shares the LoRA init
and the data order), both sides of a pair share the seed, and where both answered the same prompts they
share the prompt resample (a paired contrast stays paired). An interval that excludes 0 separates the
two at this budget. The contrasts reported:

- efforts: ``high - low`` (and the other two pairs) of student accuracy, pooled over sizes and per size,
  pairs matched on size and seed, when ``teacher.effort`` is swept;
- effort mixes (``recipe.effort_mix``): each mix ``-`` each pure effort of the sweep, pairs matched on
  size, seed and the other swept settings;
- sizes: largest ``-`` smallest dataset, pooled over efforts, pairs matched on effort and seed, when
  ``recipe.size`` is swept;
- RL after SFT: ``SFT+RL - SFT`` of student accuracy, each run's RL'd student (``eval_rl/``, model
  ``student_rl``) against its own SFT student on the same prompts and seed (paired on both), per cell and,
  with several cells, pooled over them (the cells of one seed resampled together), when runs ran ``rl``;
- arms against a control (``report.baseline``, the control arm's swept settings): ``<arm> - baseline`` of
  student accuracy for every other cell, each run against the control's run of the same seed on the same
  prompts (paired on both), over all prompts and per capability category;
- categories: adjacent capability categories in the seed document's order (style, format, knowledge,
  reasoning, edge cases) within each run, student accuracy (different prompts on each side: two
  independent resamples), and ``distilled - base`` per category where the base was evaluated (also on the
  families' graded scores where they differ from correctness: the voice of ``style_rules``, the content of
  ``json_fields`` / ``sorted_words``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from distill_lab.errors import ConfigError
from distill_lab.stages.report.samples import RL_LABEL, RL_MODEL, Answers, run_answers
from distill_lab.stages.report.tables import markdown_table
from distill_lab.stats import two_level_interval
from distill_lab.vocab import effort_rank

CATEGORY_ORDER = ("style", "format", "knowledge", "reasoning", "edge_case")
EFFORT_PAIRS = (("high", "low"), ("medium", "low"), ("high", "medium"))
N_BOOT = 2000

def _select(ans: Answers, model: str, split: str, category: str | None = None,
            graded: bool = False) -> dict[str, float]:
    """Correctness (or, ``graded``, the family's score) per prompt of one model, split and category."""
    return {pid: (score if graded else c) for (m, s, pid), (cat, c, score) in ans.items()
            if m == model and s == split and (category is None or cat == category)}


def contrast(pairs: list[tuple[dict[str, float], dict[str, float]]], *, paired: bool, confidence: float = 0.95,
             seed: int = 0, seeds: list[Any] | None = None) -> dict[str, Any] | None:
    """Mean of ``acc(a) - acc(b)`` over ``pairs`` of runs with ONE interval over seeds and prompts
    (``stats.two_level_interval``). ``seeds``: the training seed of each pair; pairs of one seed (several
    sizes at seed 0) are cells of one seed unit, resampled together, because they share the LoRA init and
    the data order (None: every pair its own seed). The two sides of a pair always share the seed;
    ``paired``: they also answered the same prompts (one prompt resample for both)."""
    keep = [i for i, (a, b) in enumerate(pairs) if a and b]
    if not keep:
        return None
    pairs = [pairs[i] for i in keep]
    units = [seeds[i] for i in keep] if seeds is not None else list(range(len(pairs)))
    if paired:
        ids_a = ids_b = sorted(set.intersection(*(set(a) & set(b) for a, b in pairs)))
    else:
        ids_a = sorted(set.intersection(*(set(a) for a, _ in pairs)))
        ids_b = sorted(set.intersection(*(set(b) for _, b in pairs)))
    if not ids_a or not ids_b:
        return None
    order = list(dict.fromkeys(units))  # seed units in first-seen order
    per_unit = [[p for p, u in zip(pairs, units, strict=True) if u == unit] for unit in order]
    width = max(len(c) for c in per_unit)  # cells per seed; a seed short of a cell has NaN there

    def arm(side: int, ids: list[str]) -> np.ndarray:
        y = np.full((len(order), width, len(ids)), np.nan)
        for i, cells in enumerate(per_unit):
            for j, pair in enumerate(cells):
                y[i, j] = [pair[side][k] for k in ids]
        return y

    st = two_level_interval([arm(0, ids_a), arm(1, ids_b)], "diff", paired_seeds=True, paired_prompts=paired,
                            value_range=(0.0, 1.0), confidence=confidence, n_resamples=N_BOOT, seed=seed)
    if st is None or st["mean"] is None:
        return None
    return {"mean": st["mean"], "ci": st["ci"], "method": st["method"], "n_seeds": len(order),
            "n_pairs": len(pairs), "n_prompts": [len(ids_a), len(ids_b)]}


def _label(run: Any, keys: list[str]) -> tuple:
    return tuple(run.params.get(k) for k in keys)


def sweep_contrasts(runs: list[Any], swept: list[str], confidence: float = 0.95,
                    baseline: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every contrast the sweep's design allows (see the module docstring), as rows for the report;
    ``baseline``: also each cell against that control arm (``arm_contrasts``)."""
    ok = [r for r in runs if r.status == "ok"]
    answers = {r.path: run_answers(r.path) for r in ok}
    ok = [r for r in ok if answers[r.path]]
    splits = sorted({s for r in ok for (_, s, _) in answers[r.path]}, key=lambda s: (s != "test", s))
    rows: list[dict[str, Any]] = []

    def add(kind: str, what: str, where: str, split: str, pairs, paired: bool, seeds=None) -> None:
        st = contrast(pairs, paired=paired, confidence=confidence, seeds=seeds)
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
                add("effort", f"{hi} - {lo}", "all sizes", split, pick(keys), True, [k[1] for k in keys])
                for size in sizes if len(sizes) > 1 else ():
                    sub = [k for k in keys if k[0] == size]
                    add("effort", f"{hi} - {lo}", f"size {size}", split, pick(sub), True, [k[1] for k in sub])
    if "recipe.effort_mix" in swept:  # each mix against each pure effort, matched on size, seed and the rest
        plain = [k for k in rest if k != "recipe.effort_mix"]
        mixed = {(r.size, r.seed, _label(r, plain), r.effort): r for r in ok if r.params.get("recipe.effort_mix")}
        pure = {(r.size, r.seed, _label(r, plain), r.effort): r for r in ok if not r.params.get("recipe.effort_mix")}
        for mix in sorted({k[3] for k in mixed}):
            for lo in sorted({k[3] for k in pure}, key=effort_rank):
                keys = [k[:3] for k in mixed if k[3] == mix and (*k[:3], lo) in pure]
                for split in splits:
                    add("effort mix", f"{mix} - {lo}", "all sizes", split,
                        [(_select(answers[mixed[(*k, mix)].path], "student", split),
                          _select(answers[pure[(*k, lo)].path], "student", split)) for k in keys], True,
                        [k[1] for k in keys])
    if "recipe.size" in swept:
        by = {(r.size, r.effort, r.seed, _label(r, rest)): r for r in ok}
        sizes = sorted({r.size for r in ok if r.size is not None})
        if len(sizes) > 1:
            big, small = sizes[-1], sizes[0]
            keys = [k[1:] for k in by if k[0] == big and (small, *k[1:]) in by]
            for split in splits:
                add("size", f"{big} - {small} rows", "all efforts", split,
                    [(_select(answers[by[(big, *k)].path], "student", split),
                      _select(answers[by[(small, *k)].path], "student", split)) for k in keys], True,
                    [k[1] for k in keys])
    rl_contrasts(ok, answers, rest, splits, add)
    if baseline:
        arm_contrasts(ok, answers, [k for k in swept if k != "seed"], baseline, splits, add)
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


RL_CONTRAST = f"{RL_LABEL} - SFT"


def _value(v: Any) -> str | None:
    """A baseline setting as a run's override records it, in Hydra's own spelling (false -> False, 5e-1 -> 0.5;
    null -> None: the setting not given)."""
    if v is None or str(v).strip() == "null":
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return str(OverridesParser.create().parse_override(f"x={v}").value())
    except Exception:  # noqa: BLE001 - a value Hydra cannot parse is compared as written
        return str(v)


def arm_contrasts(ok: list[Any], answers: dict[str, Answers], keys: list[str], baseline: dict[str, Any],
                  splits: list[str], add) -> None:
    """``<arm> - baseline``: each cell's SFT student against the control arm's run of the same seed, on the
    prompts both answered (paired on seeds and prompts), over all prompts and per capability category."""
    unknown = sorted(k for k in baseline if k not in keys)
    if unknown:
        raise ConfigError(f"report.baseline: {', '.join(unknown)} not swept in this sweep (swept: {', '.join(keys)})")
    want = {k: _value(v) for k, v in baseline.items()}
    base = {r.seed: r for r in ok if all(r.params.get(k) == v for k, v in want.items())}
    if not base:
        raise ConfigError(f"report.baseline: no finished run has {want} (null: the setting not given)")
    arms: dict[tuple, list[Any]] = defaultdict(list)
    for r in ok:
        if not all(r.params.get(k) == v for k, v in want.items()):
            arms[_label(r, keys)].append(r)
    for label, rs in arms.items():
        rs = [r for r in rs if r.seed in base]
        what = ", ".join(f"{k}={v}" for k, v in zip(keys, label, strict=True) if v is not None) + " - baseline"
        cats = sorted({cat for r in rs for (cat, _, _) in answers[r.path].values() if cat},  # controls: none
                      key=lambda c: CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else len(CATEGORY_ORDER))
        for split in splits:
            for cat in (None, *cats):
                add("arm", what, "all prompts" if cat is None else cat, split,
                    [(_select(answers[r.path], "student", split, cat), _select(answers[base[r.seed].path],
                                                                               "student", split, cat)) for r in rs],
                    True, [r.seed for r in rs])


def rl_contrasts(ok: list[Any], answers: dict[str, Answers], rest: list[str], splits: list[str], add) -> None:
    """``SFT+RL - SFT``: each run's RL'd student against its own SFT student, paired on seeds and prompts; per
    cell, and pooled over the cells (pairs of one seed resampled together) when there are several."""
    runs = [r for r in ok if any(m == RL_MODEL for (m, _, _) in answers[r.path])]
    cells: dict[tuple, list[Any]] = defaultdict(list)
    for r in runs:
        cells[(r.effort, r.size, r.student, _label(r, rest))].append(r)
    for split in splits:
        def pick(rs, split=split):
            return [(_select(answers[r.path], RL_MODEL, split), _select(answers[r.path], "student", split)) for r in rs]
        if len(cells) > 1:
            add("rl", RL_CONTRAST, "all cells", split, pick(runs), True, [r.seed for r in runs])
        for (effort, size, student, _), rs in cells.items():
            where = ", ".join(str(x) for x in (student, effort, size) if x is not None)
            add("rl", RL_CONTRAST, where, split, pick(rs), True, [r.seed for r in rs])


def contrasts_markdown(rows: list[dict[str, Any]], confidence: float) -> list[str]:
    if not rows:
        return []

    def pts(ci):
        return "–" if not ci else f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"

    def excludes_0(ci) -> bool:
        return bool(ci) and (ci[0] > 0 or ci[1] < 0)

    def prompts(r):  # one count when both sides answered the same prompts
        n = r["n_prompts"]
        return n[0] if n[0] == n[1] else f"{n[0]} / {n[1]}"

    lines = ["", "## Contrasts with one interval over seeds and prompts", "",
             "Student accuracy differences in points (the 'graded score' rows: the families' scores; the 'rl' "
             f"rows: each run's {RL_LABEL} student against its own SFT student, same prompts and seed): "
             "mean over the pairs of runs (matched on the other settings and the seed), with one "
             f"{int(confidence * 100)}% interval that resamples seeds and prompts together (a two-level bootstrap: "
             "the pairs of one seed move together, both sides of a pair share the seed and, where they answered "
             "the same prompts, the prompt resample; calibrated to Student's t for few seeds; Newcombe's interval "
             "where every resample agrees). 'separated': the interval excludes 0. With one seed the interval "
             "cannot see seed-to-seed variance (`report/contrasts.py`, `stats.two_level_interval`).", ""]
    lines += markdown_table(
        ["kind", "contrast", "within", "split", "difference (pt)", "interval (pt)", "seeds", "pairs", "prompts",
         "separated"],
        ([r["kind"], r["contrast"], r["within"], r["split"], f"{100 * r['mean']:+.1f}", pts(r["ci"]),
          r["n_seeds"], r["n_pairs"], prompts(r),
          ("yes" if excludes_0(r["ci"]) else "no") + (" (one seed)" if r["n_seeds"] == 1 else "")] for r in rows))
    return lines
