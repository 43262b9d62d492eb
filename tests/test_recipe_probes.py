"""The probes recipe's design in the prompt pool: edge cases paired with their unannounced twin in every
held-out split (whole pairs, exactly half each), matched training dose per family (recipe.match_dose),
the edge-case share of train as one knob (recipe.edge_case_share) that leaves the held-out prompts and
their pairing alone, the memorisation check kept in train, and >= 50 held-out prompts per probe task in
the study config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.generate.config import FamilySpec, RecipeConfig
from distill_lab.stages.generate.recipe import build_problems
from distill_lab.tasks.edge_controls import unannounced

from .conftest import compose_config

PROBES = compose_config(["recipe=probes"], stage="generate").recipe


def _recipe(**kw) -> RecipeConfig:
    base = {"families": PROBES.families, "size": 160, "test_size": 55, "ood_size": 44, "match_dose": "rows"}
    return RecipeConfig(**{**base, **kw})


def _pairs_whole(ps) -> None:
    loud = [p for p in ps if p.task == "edge_checks"]
    quiet = {p.meta["pair_id"]: p for p in ps if p.task == "edge_checks_unannounced"}
    assert loud and len(loud) == len(quiet)  # exactly half each, in every held-out split
    for p in loud:
        q = quiet[p.meta["pair_id"]]  # its twin is there: the same item without the hint
        assert unannounced(p.prompt) == q.prompt != p.prompt and q.reference == p.reference


def test_probes_recipe_defaults_to_matched_rows_and_no_edge_override():
    assert PROBES.match_dose == "rows" and PROBES.edge_case_share is None
    assert RecipeConfig().match_dose is None  # other recipes keep following their weights


@pytest.mark.parametrize("share", [None, 0.0, 0.1, 0.3, 0.5])
def test_edge_case_share_is_honoured_and_held_out_pairs_stay_whole(share):
    res = build_problems(_recipe(edge_case_share=share))
    train = Counter(p.task for p in res.problems["train"])
    assert sum(train.values()) == 160
    edge = train["edge_checks"]
    others = [n for t, n in train.items() if t != "edge_checks"]
    if share is None:  # matched dose: every family the same rows (8 families, 160 rows)
        assert set(train.values()) == {20}
    else:
        assert edge == round(share * 160), (share, train)
        assert max(others) - min(others) <= 1 and len(others) == 7  # the rest matched among themselves
    for split, size in (("test", 55), ("ood", 44)):
        assert len(res.problems[split]) == size  # an odd size too: a pair never straddles the end
        _pairs_whole(res.problems[split])
    assert res.stats["dose"] == {"match_dose": "rows", "edge_case_share": share}


def test_held_out_prompts_do_not_depend_on_the_dose_settings():
    ref = build_problems(_recipe())
    for kw in ({"edge_case_share": 0.3}, {"edge_case_share": 0.0}, {"match_dose": None}):
        other = build_problems(_recipe(**kw))
        for split in ("test", "ood"):
            assert [p.prompt for p in other.problems[split]] == [p.prompt for p in ref.problems[split]], kw


def test_without_matched_dose_train_follows_the_weights():
    res = build_problems(_recipe(match_dose=None, size=220))  # 11 weight units of 20 rows
    train = Counter(p.task for p in res.problems["train"])
    assert train["capital_facts"] == 3 * train["addition"] and train["edge_checks"] == 2 * train["addition"]


def test_the_memorisation_check_stays_in_train():
    res = build_problems(_recipe(size=240))
    mem = [p for p in res.problems["test"] if p.task == "capital_facts_train_phrasing"]
    train = {p.prompt for p in res.problems["train"]}
    assert mem and all(p.prompt in train for p in mem)  # not decontaminated away
    assert res.stats["memorisation"]["capital_facts_train_phrasing"] == {"asked": len(mem), "in_train": len(mem)}
    # the held-out phrasings of the same facts are still kept out of train
    assert not {p.prompt for p in res.problems["test"] if p.task == "capital_facts"} & train


@pytest.mark.parametrize(("kw", "field"), [({"edge_case_share": 1.5}, "recipe.edge_case_share"),
                                           ({"match_dose": "tokens!"}, "recipe.match_dose")])
def test_bad_dose_settings_name_the_field(kw, field):
    with pytest.raises(Exception, match=field.replace(".", r"\.")):
        _recipe(**kw)


def test_an_edge_share_without_an_edge_family_is_refused():
    with pytest.raises(ConfigError, match="edge_case_share=0.2: no family"):
        build_problems(RecipeConfig(families=[FamilySpec(name="addition")], size=10, test_size=0, ood_size=0,
                                    edge_case_share=0.2))


def test_the_study_config_has_at_least_50_held_out_prompts_per_probe_task():
    cfg = compose_config(["experiment=seed_retention_table"], stage="generate")
    res = build_problems(cfg.recipe)
    train = Counter(p.task for p in res.problems["train"])
    assert len(train) == 8 and set(train.values()) == {60}  # matched dose
    for split in ("test", "ood"):
        per_task = Counter(p.task for p in res.problems[split])
        tasks = {"addition", "multiplication", "composition", "json_fields", "sorted_words", "capital_facts",
                 "capital_facts_untaught", "style_rules", "edge_checks", "edge_checks_unannounced",
                 "capital_facts_train_phrasing" if split == "test" else "capital_facts_reverse"}
        assert set(per_task) == tasks
        assert min(per_task.values()) >= 50, (split, per_task)
        _pairs_whole(res.problems[split])
    mem = res.stats["memorisation"]["capital_facts_train_phrasing"]
    assert mem["in_train"] == mem["asked"] >= 50


@pytest.mark.slow  # two generate runs through the CLI (~20 s on 2 cores)
def test_edge_case_share_sweeps_from_the_command_line(tmp_path):
    exe = Path(sys.executable).with_name("distill-lab")
    out = subprocess.run([str(exe), "generate", "-m", "recipe=probes", "recipe.size=40", "recipe.test_size=22",
                          "recipe.ood_size=0", "recipe.edge_case_share=0.1,0.3",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={**os.environ})
    assert out.returncode == 0, out.stderr[-2000:]
    for i, share in ((0, 0.1), (1, 0.3)):
        rows = [json.loads(x) for x in next((tmp_path / "sweep" / str(i)).rglob("rows.jsonl")).read_text().splitlines()]
        train = Counter(r["task"] for r in rows if r["split"] == "train")
        assert train["edge_checks"] == round(share * 40), train
        test = [r for r in rows if r["split"] == "test"]
        assert Counter(r["task"] for r in test)["edge_checks"] == Counter(r["task"] for r in test)["edge_checks_unannounced"] > 0


def save_probe_dataset(out_dir: Path) -> None:
    """A small probes dataset (oracle answers at low effort, 22 test prompts) saved as the generate stage does."""
    from distill_lab.artifacts.rows import make_row, save_dataset
    from distill_lab.tasks import get_family
    from distill_lab.teachers.base import TeacherReply

    res = build_problems(_recipe(size=16, test_size=22, ood_size=0))
    fp = {"provider": "oracle", "model": "oracle-v1", "effort": "low"}
    rows = [make_row(p, 0, fp, TeacherReply(content=a, reasoning=r), True)
            for ps in res.problems.values() for p in ps for r, a in [get_family(p.task).oracle(p, "low")]]
    save_dataset(rows, out_dir)


def test_dataset_rows_carry_the_pair_id_of_paired_controls(tmp_path):
    from datasets import load_from_disk

    from distill_lab.artifacts.rows import load_rows

    save_probe_dataset(tmp_path)
    back = load_rows(tmp_path, split="test")
    pairs = Counter(r["pair_id"] for r in back if r["task"].startswith("edge_checks"))
    assert pairs and set(pairs.values()) == {2}  # each item twice: with and without its hint
    assert all(r["pair_id"] is None for r in back if not r["task"].startswith("edge_checks"))
    hf = load_from_disk(str(tmp_path / "hf"))["test"]
    assert sum(x is not None for x in hf["pair_id"]) == sum(pairs.values())
