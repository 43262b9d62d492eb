"""Per-family figures of a sweep, with format compliance and content apart, and the probes' contrasts.

Each run's ``metrics.json`` holds a BLOCK per split and task family (``models.<m>.splits.<s>.families``):
``accuracy`` (the family's verify), ``score`` (its graded score) and ``format.answer_parsed`` (its strict
extractor found an answer). For the probe families (``tasks/__init__.py``: ``PROBE_FAMILIES``) these
are the three figures their docstrings define: for ``json_fields`` / ``sorted_words`` format compliance
(``answer_parsed``), content (``score``) and both (``accuracy``); for ``style_rules`` the voice
(``score``) and the content (``accuracy``).

Contrasts: per run, the difference between a probe and its control on the same split, then the mean
over seeds with a Student-t interval (an interval that excludes zero separates them at this budget):
taught minus untaught facts (what teaching did), forward minus reverse (the reversal curse apart),
announced minus unannounced edge cases (how much the hint carries, within item: the held-out edge
cases come in pairs), the training phrasing minus the held-out phrasings of taught facts (memorised
rows against a fact that generalises), two-step minus three-step chains (test minus ood of
``composition``). Where the runs kept ``samples.jsonl`` the interval is over seeds and prompts
(``sweep_stats.families_two_level``), paired on items where both sides' answers share ``pair_id``. Control tasks (``tasks.is_control``) are marked in the family table; they are never
inside a category figure. The training dose per family (train rows, supervised tokens: the train
summary's ``dose_per_family``) gets its own table, mean over seeds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from distill_lab.stages.report.tables import interval_cell, markdown_table

MODELS = ("student", "base", "teacher")
# (name, (family, split) minus (family, split), what it tells)
CONTRASTS = (
    ("taught - untaught facts", ("capital_facts", "test"), ("capital_facts_untaught", "test"),
     "what teaching the facts did (the untaught facts are the prior / guessing floor)"),
    ("forward - reverse (ood)", ("capital_facts", "ood"), ("capital_facts_reverse", "ood"),
     "the reversal curse, apart from forgetting"),
    ("announced - unannounced edge cases (test)", ("edge_checks", "test"), ("edge_checks_unannounced", "test"),
     "how much of the edge-case score the hint in the prompt carries"),
    ("announced - unannounced edge cases (ood)", ("edge_checks", "ood"), ("edge_checks_unannounced", "ood"),
     "the same, out of distribution"),
    ("train phrasing - held-out phrasing facts", ("capital_facts_train_phrasing", "test"), ("capital_facts", "test"),
     "memorised rows against facts that generalise to another wording"),
    ("two-step - three-step chains", ("composition", "test"), ("composition", "ood"),
     "what one more chained step costs, every step at trained sizes"),
)


def run_families(models: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{"test/json_fields": {"student_accuracy": .., "student_score": .., "student_format": .., ...}}``."""
    out: dict[str, dict[str, float | None]] = defaultdict(dict)
    for model in MODELS:
        for split, block in ((models.get(model) or {}).get("splits") or {}).items():
            for fam, b in (block.get("families") or {}).items():
                cell = out[f"{split}/{fam}"]
                cell[f"{model}_accuracy"] = b.get("accuracy")
                cell[f"{model}_score"] = b.get("score")
                cell[f"{model}_format"] = (b.get("format") or {}).get("answer_parsed")
                cell[f"{model}_truncated"] = b.get("truncated_share", b.get("runaway_share"))
                cell[f"{model}_unclosed_thinking"] = b.get("unclosed_thinking_share")
                cell["n"] = b.get("n")
    return dict(out)


def run_contrasts(families: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float]]:
    """The contrasts of one run, per model, where both sides were measured."""
    out: dict[str, dict[str, float]] = {}
    for name, (fa, sa), (fb, sb), _ in CONTRASTS:
        a, b = families.get(f"{sa}/{fa}"), families.get(f"{sb}/{fb}")
        if not a or not b:
            continue
        diffs = {m: a[f"{m}_accuracy"] - b[f"{m}_accuracy"] for m in MODELS
                 if a.get(f"{m}_accuracy") is not None and b.get(f"{m}_accuracy") is not None}
        if diffs:
            out[name] = diffs
    return out


def aggregate_families(runs: list[Any], interval) -> dict[str, Any]:
    """Mean and seed interval of every per-family figure and contrast over ``runs`` (one cell)."""
    fams: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    cons: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        for key, vals in r.families.items():
            for what, v in vals.items():
                if v is not None and what != "n":
                    fams[key][what].append(v)
        for name, diffs in r.contrasts.items():
            for m, v in diffs.items():
                cons[name][m].append(v)
    dose: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        for fam, d in (getattr(r, "dose", None) or {}).items():
            for what, v in d.items():
                dose[fam][what].append(v)
    return {"families": {k: {w: interval(v, 0.0, 1.0) for w, v in d.items()} for k, d in sorted(fams.items())},
            "contrasts": {k: {m: interval(v, -1.0, 1.0) for m, v in d.items()} for k, d in cons.items()},
            "dose": {f: {w: sum(v) / len(v) for w, v in d.items()} for f, d in sorted(dose.items())}}


def _family_label(fam: str) -> str:
    """The family's name, with the probe it controls for a control task."""
    from distill_lab.tasks.base import family_class, is_control

    try:
        return f"{fam} (control of {family_class(fam).control_of})" if is_control(fam) else fam
    except KeyError:
        return fam


def dose_markdown(rows: list[dict[str, Any]], label) -> list[str]:
    """The training dose per family: train rows and supervised tokens (mean over seeds), with each
    family's share of the cell's supervised tokens."""
    if not any(row.get("dose") for row in rows):
        return []
    lines = ["", "## Training dose per family", "",
             "Train rows and supervised tokens (the student's tokenizer: thinking + answer + end of turn) per "
             "family, mean over seeds; recipe.match_dose=rows matches the rows, not the tokens.", ""]
    body = [[label(row), *cells] for row in rows for cells in dose_cells(row.get("dose") or {})]
    return lines + markdown_table(["cell", *DOSE_HEADER], body)


DOSE_HEADER = ["family", "train rows", "supervised tokens", "share of tokens %"]


def dose_cells(dose: dict[str, dict[str, float]]) -> list[list[str]]:
    """One table row per family of a train summary's ``dose_per_family`` (``DOSE_HEADER``): train rows,
    supervised tokens and the family's share of all supervised tokens (the sweep's and the single report)."""
    total = sum(d.get("supervised_tokens", 0.0) for d in dose.values()) or 1.0
    out = []
    for fam, d in dose.items():
        tok = d.get("supervised_tokens")
        out.append([fam, f"{d.get('rows', 0):.0f}", "–" if tok is None else f"{tok:.0f}",
                    "–" if tok is None else f"{100 * tok / total:.1f}"])
    return out


def families_markdown(rows: list[dict[str, Any]], label) -> list[str]:
    """Sections for ``sweep.md``: per family figures and the contrasts, one block per cell."""
    lines: list[str] = []
    if any(row.get("families") for row in rows):
        lines += ["", "## By task family: accuracy, content and format apart", "",
                  "accuracy = the family's verify; content = its `score` (for json_fields / sorted_words the "
                  "content whatever the format, for style_rules the voice); format = its strict extractor "
                  "found the answer (`format.answer_parsed`). Mean over seeds [one interval over seeds and prompts "
                  "where the runs kept samples.jsonl, else over seeds], in %. "
                  "A control is read against its probe and is never inside a category figure.", ""]
        figures = ("student_accuracy", "student_score", "student_format", "base_accuracy", "base_score",
                   "teacher_accuracy", "teacher_score", "student_truncated", "student_unclosed_thinking")
        lines += markdown_table(
            ["cell", "split", "family", "student acc.", "student content/score", "student format", "base acc.",
             "base content/score", "teacher acc.", "teacher content/score", "student truncated",
             "student unclosed think"],
            ([label(row), key.split("/", 1)[0], _family_label(key.split("/", 1)[1]),
              *(interval_cell(st.get(what)) for what in figures)]
             for row in rows for key, st in (row.get("families") or {}).items()))
    if any(row.get("contrasts") for row in rows):
        lines += ["", "## Contrasts between probes and their controls", "",
                  "The difference in accuracy (points), mean over seeds [one interval over seeds and prompts, "
                  "the seeds paired, where the runs kept samples.jsonl; else a Student-t interval over seeds]; "
                  "an interval that excludes 0 separates the two at this budget. items: 'paired on items' where "
                  "both sides are the same items (pair_id: an edge case with and without its hint), seeds and "
                  "items resampled together; else the two sides' prompts are resampled independently.", ""]
        tells = {name: what for name, _, _, what in CONTRASTS}

        def items(st: dict[str, Any]) -> str:  # how the two sides' prompts were resampled (sweep_stats)
            return next((f["pairing"] for m in MODELS if isinstance(f := st.get(m), dict) and f.get("pairing")),
                        "per-run differences (no samples.jsonl)")

        lines += markdown_table(
            ["cell", "contrast", "student", "base", "teacher", "items", "what it tells"],
            ([label(row), name, *(interval_cell(st.get(m)) for m in MODELS), items(st), tells.get(name, "")]
             for row in rows for name, st in (row.get("contrasts") or {}).items()))
    return lines + dose_markdown(rows, label)
