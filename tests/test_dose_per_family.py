"""The training dose per family, reported where a reader looks: the dataset card (train rows and supervised
text), the train summary (rows and supervised tokens of the student's tokenizer) and the sweep report
(mean over seeds, with each family's share of the tokens); controls are marked in the report's family
table and the memorisation contrast is drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_lab.artifacts.rows import make_row
from distill_lab.stages.generate.card import dose_per_family as card_dose
from distill_lab.stages.generate.card import write_card
from distill_lab.stages.generate.config import FamilySpec, RecipeConfig
from distill_lab.stages.generate.recipe import build_problems
from distill_lab.stages.report.sweep import write_report
from distill_lab.stages.train.features import build_examples, dose_per_family
from distill_lab.students.chat import IGNORE
from distill_lab.students.tiny import build_tiny_tokenizer
from distill_lab.tasks import get_family
from distill_lab.teachers.base import TeacherReply

from .conftest import compose_config
from .test_report_families import seed_job


def _rows(match_dose):
    res = build_problems(RecipeConfig(families=[FamilySpec(name="addition"), FamilySpec(name="capitals", weight=3.0,
                                                                                         params={"n_facts": 10})],
                                      size=24, test_size=2, ood_size=0, match_dose=match_dose))
    fp = {"provider": "oracle", "model": "oracle-v1", "effort": "high"}
    rows = []
    for ps in res.problems.values():
        for p in ps:
            reasoning, answer = get_family(p.task).oracle(p, "high")
            rows.append(make_row(p, 0, fp, TeacherReply(content=answer, reasoning=reasoning), True))
    return res, rows


def test_the_card_reports_rows_and_supervised_text_per_family(tmp_path):
    res, rows = _rows("rows")
    dose, unit = card_dose(rows)
    assert unit == "words" and {f: d["rows"] for f, d in dose.items()} == {"addition": 12, "capitals": 12}
    train = [r for r in rows if r["split"] == "train" and r["task"] == "addition"]
    words = sum(len(r["messages"][-1]["content"].split()) + len(r["messages"][-1]["reasoning_content"].split())
                for r in train)
    assert dose["addition"]["supervised"] == words
    text = write_card(rows, tmp_path, recipe_stats=res.stats, filters={}).read_text()
    assert "## Training dose per family" in text and "recipe.match_dose=rows" in text
    share = 100 * words / (words + dose["capitals"]["supervised"])
    assert f"| addition | 12 | {words} | {share:.1f} |" in text
    _, weighted = _rows(None)  # without matched dose the weights decide: 1 : 3
    assert {f: d["rows"] for f, d in card_dose(weighted)[0].items()} == {"addition": 6, "capitals": 18}


def test_the_train_stage_counts_supervised_tokens_per_family():
    _, rows = _rows("rows")
    train = [r for r in rows if r["split"] == "train"]
    tok = build_tiny_tokenizer()
    examples, _ = build_examples(train, tok, compose_config(["student=tiny"], stage="train").data)
    dose = dose_per_family(examples, train)
    assert {f: d["rows"] for f, d in dose.items()} == {"addition": 12, "capitals": 12}
    for fam in ("addition", "capitals"):
        ids = {str(r["id"]) for r in train if r["task"] == fam}
        want = sum(sum(lab != IGNORE for lab in e.labels) for e in examples if e.row_id in ids)
        assert dose[fam]["supervised_tokens"] == want > 0
    assert dose["addition"]["supervised_tokens"] > dose["capitals"]["supervised_tokens"]  # same rows, unequal tokens
    assert dose_per_family(examples[:5], train) != dose  # it counts the examples given (after a val hold-out)


def _block(acc):
    return {"n": 20, "accuracy": acc, "score": acc, "format": {"answer_parsed": 1.0}, "accuracy_ci": [0.0, 1.0]}


def test_the_sweep_report_has_the_dose_table_controls_marked_and_the_memorisation_contrast(tmp_path):
    sweep = tmp_path / "sw"
    for seed in (0, 1):
        dose = {"addition": {"rows": 50, "supervised_tokens": 3000 + 1000 * seed},
                "capital_facts": {"rows": 50, "supervised_tokens": 1000}}
        fams = {"capital_facts": _block(0.2), "capital_facts_train_phrasing": _block(0.9),
                "capital_facts_untaught": _block(0.0)}
        models = {m: {"overall": _block(a), "splits": {"test": {**_block(a), "families": fams}}}
                  for m, a in (("student", 0.5), ("teacher", 1.0))}
        seed_job(sweep, seed, {"schema_version": 1, "models": models}, manifest={
            "stage": "pipeline", "config": {"stage": "pipeline", "seed": seed}, "summary": {"dose_per_family": dose}})
    res = write_report(sweep, tmp_path / "out")
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "## Training dose per family" in md
    assert "| addition | 50 | 3500 | 77.8 |" in md and "| capital_facts | 50 | 1000 | 22.2 |" in md
    assert "| test | capital_facts_untaught (control of capital_facts) |" in md
    assert "| test | capital_facts |" in md  # the probe itself is not marked
    (row,) = res["rows"]
    assert row["contrasts"]["train phrasing - held-out phrasing facts"]["student"]["mean"] == pytest.approx(0.7)
    assert res["runs"][0].dose["addition"] == {"rows": 50.0, "supervised_tokens": 3000.0}
