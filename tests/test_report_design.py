"""Resolution before spending (``report/design.py``): a sweep's prompts x seeds, dose and minimum
detectable effect, read from its config before it runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from scipy.stats import t

from distill_lab.config import register_configs
from distill_lab.errors import ConfigError
from distill_lab.stages.report.design import Assumptions, check_design, mde, sainte_lague


@pytest.fixture(autouse=True)
def _schema():
    register_configs()  # what every stage entry point does first


def _hand_mde(seeds: int, prompts: int, p=0.5, sd=0.05, rho=0.5) -> float:
    """The usual approximation: (t_{1-a/2} + t_{power}) x SE at the Satterthwaite df."""
    vs, vp = 2 * sd ** 2 / seeds, 2 * p * (1 - p) * (1 - rho) / prompts
    df = (vs + vp) ** 2 / (vs ** 2 / (seeds - 1) + vp ** 2 / (prompts - 1))
    return (t.ppf(0.975, df) + t.ppf(0.8, df)) * math.sqrt(vs + vp)


def test_mde_matches_a_hand_computation():
    got = mde(2, 40, Assumptions())
    assert got["se"] == pytest.approx(math.sqrt(2 * 0.05 ** 2 / 2 + 2 * 0.25 * 0.5 / 40))  # 9.35 points
    assert got["df"] == pytest.approx(10.56, abs=0.01)
    assert got["mde"] == pytest.approx(_hand_mde(2, 40), abs=0.005)  # 28.9 points
    big = mde(1000, 100000, Assumptions())  # the normal limit: (1.96 + 0.84) x SE
    assert big["mde"] == pytest.approx(2.8016 * big["se"], rel=1e-3)
    assert mde(5, 40, Assumptions())["mde"] < 0.85 * got["mde"]  # more seeds: finer
    # with 2 seeds the seed term's one degree of freedom limits it: 4x the prompts buy (almost) nothing
    assert mde(2, 160, Assumptions())["mde"] == pytest.approx(got["mde"], rel=0.05)
    assert mde(2, 40, Assumptions(prompt_corr=0.0))["mde"] > got["mde"]  # unpaired prompts: less resolution


def test_sainte_lague_is_the_recipes_quota():
    from distill_lab.stages.generate.recipe import quota

    for total, weights in ((50, [1.0]), (400, [0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0]), (7, [1.0, 2.0, 3.0])):
        assert sainte_lague(total, weights) == quota(total, weights)


def test_the_effort_x_size_design():
    d = check_design(["experiment=effort_x_size"])
    assert d["jobs"] == 18 and len(d["cells"]) == 9  # 3 efforts x 3 sizes, 2 seeds each
    cell = next(c for c in d["cells"] if c["label"] == "teacher.effort=high, recipe.size=50")
    assert cell["seeds"] == ["0", "1"] and cell["prompts"] == {"test": 40, "ood": 40}
    assert cell["rows_by_family"] == {"addition": 50} and cell["rows_seen"] == 40 * 8
    low = next(c for c in d["cells"] if c["label"] == "teacher.effort=low, recipe.size=50")
    assert cell["chars_per_row"]["addition"] > 4 * low["chars_per_row"]["addition"]  # high effort: longer rows
    r = next(r for r in d["resolution"] if r["split"] == "test" and r["category"] == "all")
    assert (r["seeds"], r["prompts"]) == (2, 40)
    assert r["mde"] == pytest.approx(_hand_mde(2, 40), abs=0.005)


def test_more_seeds_from_design_overrides_and_assumptions():
    d = check_design(["experiment=effort_x_size"], ["seed=0,1,2,3", "teacher.effort=low,high", "recipe.ood_size=80"],
                     Assumptions(seed_sd=0.1, accuracy=0.8))
    assert d["jobs"] == 2 * 3 * 4 and len(d["cells"]) == 6
    assert d["cells"][0]["label"] == "teacher.effort=low, recipe.size=50"  # a fixed override names no cell
    assert d["cells"][0]["prompts"] == {"test": 40, "ood": 80}
    r = next(r for r in d["resolution"] if r["category"] == "all")
    assert r["seeds"] == 4
    assert r["mde"] == pytest.approx(_hand_mde(4, 40, p=0.8, sd=0.1), abs=0.005)


@pytest.mark.parametrize("overrides,extra,needle", [
    (["experiment=no_such_study"], [], "no_such_study"),
    (["experiment=demo"], [], "sweeps nothing"),
    (["experiment=effort_x_size"], ["teacher.effort=low,ultra"], "ultra"),
    (["experiment=effort_x_size", "recipe.test_size=0", "recipe.ood_size=0"], [], "no held-out prompts"),
])
def test_nonsense_configs_are_refused_with_the_reason(overrides, extra, needle):
    with pytest.raises(ConfigError, match=needle):
        check_design(overrides, extra)


def test_bad_assumptions_are_refused():
    with pytest.raises(ConfigError, match="report.design_prompt_corr"):
        check_design(["experiment=effort_x_size"], [], Assumptions(prompt_corr=1.5))


def test_the_cli_prints_the_design_and_writes_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "distill_lab.stages.report", "report.check_design=true",
                          "experiment=effort_x_size", "report.design_overrides=['seed=0,1,2']",
                          f"run_dir={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "## Smallest effect a contrast between two cells can detect" in out.stdout
    d = json.loads((tmp_path / "design.json").read_text())
    assert d["jobs"] == 27 and {r["seeds"] for r in d["resolution"]} == {3}


@pytest.mark.slow
def test_the_cli_refuses_a_config_that_sweeps_nothing(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "distill_lab.stages.report", "report.check_design=true",
                          "experiment=demo", f"run_dir={tmp_path / 'bad'}"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "sweeps nothing" in bad.stderr


def test_a_token_budget_counts_the_steps_it_takes_not_the_step_cap():
    """With train.token_budget the rows seen are the steps the budget takes (estimated from the oracle's rows
    in the student's tokens), not train.max_steps x batch. The tiny student's tokenizer is byte-level with
    the thinking tags and end of turn as single tokens, so a row supervises len(thinking) + len(answer) + 7
    tokens (ASCII): the expected steps are computed from the characters alone."""
    d = check_design(["experiment=effort_x_size_v2", "dose=equal_tokens", "student=tiny"], ["seed=0"])
    assert len(d["cells"]) == 6
    seen = {}
    for c in d["cells"]:
        b = c["token_budget"]
        assert b["budget"] == 44000 and b["unit"] == "supervised" and b["cap_steps"] == 400 and b["status"] == "estimated"
        tok = c["chars_per_row"]["addition"] + 7
        assert b["tokens_per_row"]["addition"] == pytest.approx(tok)
        assert b["steps"] == math.ceil(44000 / (8 * tok)) and c["rows_seen"] == 8 * b["steps"] != 400 * 8
        seen[c["effort"]] = c["rows_seen"]
    assert seen["low"] > seen["medium"] > seen["high"]  # shorter rows: more of them for the same tokens
    from distill_lab.stages.report.design import design_markdown

    assert f"~{seen['high']} (" in design_markdown(d)
    capped = check_design(["experiment=effort_x_size_v2", "dose=equal_tokens", "student=tiny", "train.max_steps=5"],
                          ["seed=0", "teacher.effort=low", "recipe.size=100"])
    (c,) = capped["cells"]
    assert c["rows_seen"] is None and c["token_budget"]["status"] == "exceeds cap"
    assert "refuses" in design_markdown(capped)


@pytest.mark.parametrize("extra", [[], ["recipe.edge_case_share=0.5"]])
def test_train_rows_per_family_follow_the_recipes_train_deal(extra):
    """recipe=probes matches the dose (match_dose=rows: capital_facts' weight 3 sets only its held-out share)
    and edge_case_share moves train rows to the edge-case family: the design shows what generate deals."""
    from collections import Counter

    from distill_lab.stages.generate.recipe import build_problems
    from tests.conftest import compose_config

    d = check_design(["recipe=probes", "student=tiny", *extra], ["seed=0,1"])
    realised = Counter(p.task for p in build_problems(compose_config(["recipe=probes", *extra],
                                                                     stage="generate").recipe).problems["train"])
    assert d["cells"][0]["rows_by_family"] == dict(realised)
    assert (realised["edge_checks"] > 3 * realised["addition"]) is bool(extra)


def test_recipe_sources_count_in_the_deal_at_their_weight_and_category(tmp_path):
    """A recipe with a source: its weight takes its share of every split and of the train rows, under its
    category, as generate deals them; the design says it did not load the source."""
    from collections import Counter

    from distill_lab.stages.generate.recipe import build_problems
    from distill_lab.stages.report.design import design_markdown
    from tests.conftest import compose_config

    rows = [{"prompt": f"What is the capital of land number {i} (split {s})?", "reference": f"City{i}", "split": s}
            for s in ("train", "test", "ood") for i in range(60)]
    path = tmp_path / "facts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = ["recipe.families=[{name: addition}, {name: json_fields}, {name: edge_checks}]", "recipe.size=30",
              "recipe.test_size=21",
              "recipe.ood_size=10", f"recipe.sources=[{{kind: jsonl, path: '{path}', name: facts, weight: 2.0, "
              "category: reasoning}]"]
    d = check_design(["student=tiny", *recipe], ["seed=0,1"])
    (c,) = d["cells"]
    drawn = build_problems(compose_config(recipe, stage="generate").recipe)
    cat = {"json_fields": "format", "edge_checks": "edge_case", "addition": "reasoning", "source": "reasoning"}
    for split in ("test", "ood"):  # addition 1 : json_fields 1 : edge_checks 1 (pairs) : the source 2
        by_cat = Counter(cat[p.task if p.task in cat else "source"] for p in drawn.problems[split]
                         if p.task != "edge_checks_unannounced")  # a control is never inside its category
        assert c["prompts_by_category"][split] == dict(by_cat)
    # test, 21 slots: addition 4, json_fields 4, the source 9, edge_checks 4 = 2 probes + their 2 controls
    assert c["prompts_by_category"]["test"] == {"reasoning": 4 + 9, "format": 4, "edge_case": 2}
    assert sum(c["rows_by_family"].values()) == 30 and c["rows_by_family"]["source:facts"] == 12
    assert len(drawn.problems["train"]) == 30
    assert "Sources (source:facts) are counted at their weights" in design_markdown(d)
    assert "Sources (" not in design_markdown(check_design(["student=tiny"], ["seed=0,1"]))


@pytest.mark.parametrize("test_size", [5, 7, 12])
def test_held_out_pairs_are_dealt_as_generate_deals_them(test_size):
    """edge_checks' held-out problems come with their paired controls (2 slots); when a pair no longer fits,
    the last slot goes to another member: the design's deal equals generate's."""
    from collections import Counter

    from distill_lab.stages.generate.recipe import build_problems
    from distill_lab.stages.report.design import held_out_deal
    from tests.conftest import compose_config

    recipe = ["recipe.families=[{name: edge_checks}, {name: addition}]", "recipe.size=4",
              f"recipe.test_size={test_size}", "recipe.ood_size=0"]
    drawn = Counter(p.task for p in build_problems(compose_config(recipe, stage="generate").recipe).problems["test"])
    assert held_out_deal(test_size, [1.0, 1.0], [2, 1]) == [drawn["edge_checks"] * 2, drawn["addition"]]
    assert drawn["edge_checks"] == drawn["edge_checks_unannounced"]
