"""The seed's data remedies end to end on SmolLM2-135M (slow): mixed-effort distillation
(``recipe.effort_mix``) and the edge-case share (``recipe.edge_case_share``), each from the dataset the
oracle teacher writes to a few SFT steps of the real student (and, for edge cases, its eval on the paired
controls). RL after SFT and voting across SmolLM2 students are in ``test_rl_smollm2.py``."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.stages.common import run_stage
from tests.conftest import compose_config

pytestmark = pytest.mark.slow  # SmolLM2 SFT steps (and one short eval) per test: a minute or two each


def _train(tmp_path, dataset, steps=3):
    out = tmp_path / "sft"
    res = run_stage("train", compose_config(["student=smollm2_135m", "hardware=cpu", f"train.dataset_dir={dataset}",
                                             f"train.max_steps={steps}", "train.batch_size=4", f"run_dir={out}"],
                                            stage="train"), out)
    s = res.summary
    assert s["steps"] == steps and math.isfinite(s["final_loss"]) and s["supervised_tokens"] > 0
    return out, s


def test_effort_mix_rows_record_effort_and_train_smollm2(tmp_path):
    gen = tmp_path / "gen"
    res = run_stage("generate", compose_config([
        "recipe.families=[{name: addition, params: {digits: 2, ood_digits: 3}}]", "recipe.size=32",
        "recipe.test_size=8", "recipe.ood_size=0", "recipe.effort_mix=low@0.25+high@0.75", "generate.progress=false",
        f"run_dir={gen}"], stage="generate"), gen)
    rows = load_rows(gen / "dataset")
    train = [r for r in rows if r["split"] == "train"]
    assert Counter(r["teacher"]["effort"] for r in train) == {"low": 8, "high": 24}  # the shares asked for
    assert {r["teacher"]["effort"] for r in rows if r["split"] == "test"} == {"high"}  # held out: most detailed
    assert len({r["prompt_id"] for r in rows}) == len(rows)  # no prompt twice
    assert res.summary["per_effort"]["low"]["rows"] == 8
    _, s = _train(tmp_path, gen / "dataset")
    assert s["rows"]["train"] + s["rows"]["val"] == 32  # every row of the mix reached the student


def test_edge_case_share_holds_and_controls_stay_paired_through_smollm2_eval(tmp_path):
    gen = tmp_path / "gen"
    run_stage("generate", compose_config(["recipe=probes", "recipe.size=40", "recipe.test_size=22", "recipe.ood_size=0",
                                          "recipe.edge_case_share=0.3", "generate.progress=false", f"run_dir={gen}"],
                                         stage="generate"), gen)
    rows = load_rows(gen / "dataset")
    train = Counter(r["task"] for r in rows if r["split"] == "train")
    assert sum(train.values()) == 40 and train["edge_checks"] == 12  # 0.3 of train
    sft, _ = _train(tmp_path, gen / "dataset", steps=2)
    ev = tmp_path / "eval"
    run_stage("eval", compose_config(["student=smollm2_135m", "hardware=cpu", f"eval.dataset_dir={gen / 'dataset'}",
                                      f"eval.adapter_dir={sft / 'adapter'}", "eval.splits=[test]",
                                      "eval.include_base=false", "eval.max_new_tokens=24", "eval.allow_truncation=true",
                                      "eval.bootstrap=1", "eval.progress=false", "eval.batch_size=22", f"run_dir={ev}"],
                                     stage="eval"), ev)
    recs = [json.loads(x) for x in (ev / "samples.jsonl").read_text().splitlines()]
    stud = [r for r in recs if r["model"] == "student" and r["kind"] == "greedy"]
    assert len(stud) == 22
    pairs: dict[str, set[str]] = {}
    for r in stud:
        if r["task"].startswith("edge_checks"):
            assert r["pair_id"] is not None, r["prompt_id"]
            pairs.setdefault(r["pair_id"], set()).add(r["task"])
    assert pairs and all(v == {"edge_checks", "edge_checks_unannounced"} for v in pairs.values())
