"""Recipe pools: nested subsets, fixed held-out pools, disjoint splits, decontamination, shortfall."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.generate.config import FamilySpec, RecipeConfig, SourceSpec
from distill_lab.stages.generate.decontam import NearDupIndex, ngrams, normalize
from distill_lab.stages.generate.recipe import build_problems, deal, quota
from distill_lab.tasks import BUILTIN_FAMILIES, CATEGORIES, get_family
from tests.conftest import compose_config


def _capabilities(**kw) -> RecipeConfig:
    return replace(compose_config(["recipe=capabilities", "student=tiny"], stage="generate").recipe, **kw)


def _prompts(res, split):
    return [p.prompt for p in res.problems[split]]


def test_capabilities_recipe_mixes_every_family_across_the_five_categories():
    res = build_problems(_capabilities())
    assert res.stats["counts"] == {"train": 400, "test": 100, "ood": 100}
    assert set(res.stats["per_family"]) == set(BUILTIN_FAMILIES)
    per_cat = res.stats["per_category"]
    assert set(per_cat) == set(CATEGORIES)
    assert all(per_cat[c]["train"] == 80 and per_cat[c]["test"] == 20 for c in CATEGORIES)  # equal weights


@pytest.mark.parametrize("seed", [0, 7])
def test_smaller_size_is_a_nested_subset_and_held_out_is_fixed(seed):
    small = build_problems(_capabilities(seed=seed, size=100))
    big = build_problems(_capabilities(seed=seed, size=350))
    assert _prompts(big, "train")[:100] == _prompts(small, "train")
    for fam in BUILTIN_FAMILIES:  # per family too: the small set's items are the first of the big one's
        s = [p.prompt for p in small.problems["train"] if p.task == fam]
        b = [p.prompt for p in big.problems["train"] if p.task == fam]
        assert s and b[: len(s)] == s
    assert _prompts(small, "test") == _prompts(big, "test") and _prompts(small, "ood") == _prompts(big, "ood")
    other = build_problems(_capabilities(seed=seed + 1, size=100))
    assert _prompts(other, "train") != _prompts(small, "train")


def test_pool_does_not_depend_on_the_teacher_effort(tmp_path):
    from distill_lab.artifacts.rows import load_rows
    from distill_lab.stages.common import run_stage

    seen = {}
    for effort in ("low", "high"):
        cfg = compose_config(["recipe=capabilities", "student=tiny", f"teacher.effort={effort}", "recipe.size=30",
                              "recipe.test_size=10", "recipe.ood_size=10",
                              f"generate.output_dir={tmp_path / effort}"], stage="generate")
        run_stage("generate", cfg, tmp_path / f"run_{effort}")
        rows = load_rows(tmp_path / effort)
        assert {r["teacher"]["effort"] for r in rows} == {effort}
        seen[effort] = sorted((r["split"], r["prompt_id"], r["messages"][-2]["content"]) for r in rows)
        reasoning = {r["prompt_id"]: r["messages"][-1]["reasoning_content"] for r in rows}
        seen[effort + "_len"] = sum(len(v) for v in reasoning.values())
    assert seen["low"] == seen["high"] and len(seen["low"]) == 50
    assert seen["low_len"] < seen["high_len"]


def test_splits_never_overlap_exactly_or_by_ngrams():
    recipe = _capabilities(size=400)
    res = build_problems(recipe)
    norm = {s: {normalize(p) for p in _prompts(res, s)} for s in res.problems}
    assert not norm["train"] & norm["test"] and not norm["train"] & norm["ood"] and not norm["test"] & norm["ood"]
    held = set()
    for s in ("test", "ood"):
        for p in res.problems[s]:
            held |= ngrams(get_family(p.task).decontam_text(p), recipe.ngram)
    for p in res.problems["train"]:
        assert not ngrams(get_family(p.task).decontam_text(p), recipe.ngram) & held, p.prompt


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_decontamination_finds_planted_overlaps(tmp_path):
    base = RecipeConfig(name="t", families=[FamilySpec(name="ordering"), FamilySpec(name="addition")],
                        size=40, test_size=20, ood_size=10)
    clean = build_problems(base)
    test = clean.problems["test"]
    ordering_test = next(p for p in test if p.task == "ordering")
    facts = ordering_test.prompt.rsplit(" What is the relation", 1)[0]
    planted = [
        {"prompt": test[0].prompt, "reference": test[0].reference},  # exact copy
        {"prompt": "  " + test[1].prompt.upper() + "  "},  # the same after normalising
        {"prompt": f"Consider this: {facts} Who is the tallest?"},  # shares an 8-gram with a test prompt
        {"prompt": "What is the boiling point of water at sea level in degrees Celsius?", "reference": "100"},
    ]
    src = SourceSpec(kind="jsonl", path=_write_jsonl(tmp_path / "p.jsonl", planted), name="planted", weight=0.1,
                     shuffle=False)
    res = build_problems(replace(base, sources=[src], shortfall="fill"))
    assert _prompts(res, "test") == _prompts(clean, "test")  # held-out is drawn first, unchanged
    train = set(_prompts(res, "train"))
    assert planted[3]["prompt"] in train
    assert not {planted[0]["prompt"], planted[1]["prompt"].strip(), planted[2]["prompt"]} & train
    f = res.stats["filters"]
    assert f["decontam_exact"] == 2 and f["decontam_ngram8"] == 1
    assert res.stats["sources"]["source:planted"]["records"] == 4


def test_exact_and_near_duplicates_are_removed(tmp_path):
    long = ("Write a short poem about the sea at night, with the moon over the harbour, the boats asleep at "
            "their moorings, a lighthouse turning slowly and one fisherman walking home along the wall")
    records = [{"prompt": long}, {"prompt": long}, {"prompt": long.replace("short", "brief")},
               {"prompt": long.lower() + "!"}, {"prompt": "Something else entirely, about mountains."}]
    src = SourceSpec(kind="jsonl", path=_write_jsonl(tmp_path / "d.jsonl", records), shuffle=False)
    res = build_problems(RecipeConfig(families=[], sources=[src], size=5, test_size=0, ood_size=0))
    assert _prompts(res, "train") == [long, "Something else entirely, about mountains."]
    assert res.stats["filters"]["exact_duplicate"] == 2 and res.stats["filters"]["near_duplicate"] == 1
    assert res.stats["shortfall"]["train"]["realised"] == 2
    no_dedup = build_problems(RecipeConfig(families=[], sources=[src], size=5, test_size=0, ood_size=0, dedup=False))
    assert len(_prompts(no_dedup, "train")) == 5


def test_near_dup_index_threshold():
    idx = NearDupIndex(threshold=0.8)
    a = "the quick brown fox jumps over the lazy dog near the river bank today"
    idx.add(a)
    assert idx.find(a.replace("today", "tonight")) == 0
    assert idx.find("a completely different sentence about cooking rice and beans slowly") is None


def test_shortfall_keeps_the_mix_and_is_reported(tmp_path):
    animals = ["otters", "owls", "bees", "crows", "eels", "moles", "newts", "wasps", "yaks", "voles"]
    records = [{"prompt": f"Tell me one fact about {a}."} for a in animals]
    src = SourceSpec(kind="jsonl", path=_write_jsonl(tmp_path / "s.jsonl", records), name="short")
    recipe = RecipeConfig(families=[FamilySpec(name="addition")], sources=[src], size=100, test_size=0, ood_size=0)
    shrink = build_problems(recipe)
    tasks = [p.task for p in shrink.problems["train"]]
    assert tasks.count("freeform") == 10 and tasks.count("addition") in (10, 11)  # 1:1 as asked
    sf = shrink.stats["shortfall"]["train"]
    assert sf["requested"] == 100 and sf["realised"] == len(tasks) and sf["short"] == ["source:short"]
    fill = build_problems(replace(recipe, shortfall="fill"))
    assert len(fill.problems["train"]) == 100 and [p.task for p in fill.problems["train"]].count("freeform") == 10
    with pytest.raises(ConfigError, match="source:short ran out of train prompts after 10"):
        build_problems(replace(recipe, shortfall="error"))


def test_knowledge_coverage_is_reported():
    recipe = RecipeConfig(families=[FamilySpec(name="capitals", params={"n_facts": 10})], size=5, test_size=10,
                          ood_size=0)
    cov = build_problems(recipe).stats["coverage"]["capitals"]
    assert cov["facts_taught"] == 5 and cov["heldout"] == 10 and 0 < cov["share_taught"] < 1
    full = build_problems(replace(recipe, size=10)).stats["coverage"]["capitals"]
    assert full["facts_taught"] == 10 and full["share_taught"] == 1.0


def test_deal_is_proportional_and_house_monotone():
    w = [0.5, 0.5, 1.0, 2.0]
    assert quota(400, w) == [50, 50, 100, 200]
    d = deal(w, 333)
    for m in (1, 17, 100, 250):
        assert d[:m] == deal(w, m)
        q = quota(m, w)
        assert all(abs(q[i] - m * w[i] / sum(w)) <= 1 for i in range(len(w)))


def test_unknown_family_is_a_config_error():
    with pytest.raises(ConfigError, match=r"recipe.families\[1\].name: unknown task family 'divison'"):
        build_problems(RecipeConfig(families=[FamilySpec(name="addition"), FamilySpec(name="divison")]))
    with pytest.raises(ConfigError, match=r"recipe.families\[0\].params"):
        build_problems(RecipeConfig(families=[FamilySpec(name="addition", params={"digits": 0})]))


def test_recipe_config_ranges_name_the_field():
    with pytest.raises(ConfigError, match="recipe.shortfall"):
        RecipeConfig(shortfall="grow")
    with pytest.raises(ConfigError, match="recipe.sources.kind"):
        SourceSpec(kind="csv", path="x")
    with pytest.raises(ConfigError, match="recipe.sources.split"):
        SourceSpec(kind="jsonl", path="x", split="dev")
