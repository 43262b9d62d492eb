"""Teacher-dataset and prompt-source imports (issue 16 items 10-14): every turn kept, the generate filters
applied, held-out splits kept held out, sizes and skips said, errors before any row, and run_dir honoured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.config import SourceSpec
from distill_lab.errors import ConfigError
from distill_lab.exit_codes import EXIT_CONFIG
from distill_lab.stages.generate.sources import SourceError, load_source
from distill_lab.tasks import get_family
from tests.conftest import compose_config


def _jsonl(path: Path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _rows(items):
    return [r for s in ("train", "test", "ood") for r in items.rows[s]]


# ------------------------------------------------------------------ item 10: every turn is kept
def test_multi_turn_rows_keep_every_turn(tmp_path):
    convo = [{"role": "system", "content": "Be brief."},
             {"role": "user", "content": "Pick a number between 1 and 9."},
             {"role": "assistant", "content": "7.", "reasoning": "Any will do; 7."},
             {"role": "user", "content": "Double it."},
             {"role": "assistant", "content": "The answer is 14.", "reasoning": "7 * 2 = 14."}]
    last_only = [convo[3], convo[4]]
    path = _jsonl(tmp_path / "mt.jsonl", [{"messages": convo}, {"messages": last_only}])
    rows = _rows(load_source(SourceSpec(kind="teacher_dataset", path=path, shuffle=False)))
    full, short = rows
    assert [m["role"] for m in full["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert full["messages"][2] == {"role": "assistant", "content": "7.", "reasoning_content": "Any will do; 7."}
    assert full["messages"][-1]["content"] == "The answer is 14."
    assert full["prompt_id"] != short["prompt_id"]  # the same last question after another history
    assert [m["role"] for m in short["messages"]] == ["user", "assistant"]


def test_turns_of_other_roles_are_named(tmp_path):
    path = _jsonl(tmp_path / "tool.jsonl", [{"messages": [{"role": "user", "content": "Hi"},
                                                          {"role": "tool", "content": "{}"},
                                                          {"role": "assistant", "content": "Hello."}]}])
    with pytest.raises(SourceError, match=r"tool\.jsonl:1: messages with role\(s\) \['tool'\] cannot be imported"):
        load_source(SourceSpec(kind="teacher_dataset", path=path))


# ------------------------------------------------------------------ item 11: the generate filters apply
def test_a_reasoning_field_and_the_same_think_tags_give_one_think_block(tmp_path):
    same = {"role": "assistant", "content": "<think>3 + 4 = 7</think>The answer is 7.", "reasoning": "3 + 4 = 7"}
    other = {"role": "assistant", "content": "<think>guess</think>The answer is 7.", "reasoning": "3 + 4 = 7"}
    user = {"role": "user", "content": "What is 3 + 4?"}
    path = _jsonl(tmp_path / "a.jsonl", [{"messages": [user, same]}])
    (row,) = _rows(load_source(SourceSpec(kind="teacher_dataset", path=path)))
    assert row["messages"][-1] == {"role": "assistant", "content": "The answer is 7.", "reasoning_content": "3 + 4 = 7"}
    path = _jsonl(tmp_path / "b.jsonl", [{"messages": [user, other]}])
    with pytest.raises(SourceError, match=r"b\.jsonl:1: .*reasoning field and different <think> text"):
        load_source(SourceSpec(kind="teacher_dataset", path=path))


def test_imported_rows_pass_the_generate_filters(tmp_path):
    from distill_lab.stages.common import run_stage

    def rec(a, answer, thinking):
        asst = {"role": "assistant", "content": f"The answer is {answer}."}
        if thinking:
            asst["reasoning_content"] = f"{a} + 1 = {a + 1}"
        return {"messages": [{"role": "user", "content": f"What is {a} + 1?"}, asst], "reference": str(a + 1)}

    recs = [rec(10, 11, True), rec(20, 21, False), rec(30, 99, True), rec(40, 41, True)]
    path = _jsonl(tmp_path / "t.jsonl", recs)
    cfg = compose_config(["student=tiny", "recipe.families=[]", "recipe.size=4", "recipe.test_size=0",
                          "recipe.ood_size=0", f"recipe.sources=[{{kind: teacher_dataset, path: '{path}', "
                          "task: addition}]", f"generate.output_dir={tmp_path / 'ds'}"], stage="generate")
    res = run_stage("generate", cfg, tmp_path / "run")
    by_prompt = {r["messages"][-2]["content"]: r for r in load_rows(tmp_path / "ds")}
    assert by_prompt["What is 10 + 1?"]["split"] == "train" and by_prompt["What is 40 + 1?"]["split"] == "train"
    assert by_prompt["What is 20 + 1?"]["split"] == "rejected"
    assert by_prompt["What is 20 + 1?"]["reject_reason"] == "empty_thinking"
    assert by_prompt["What is 30 + 1?"]["split"] == "rejected"
    assert by_prompt["What is 30 + 1?"]["reject_reason"] == "unverified"
    assert res.summary["outcomes"] == {"kept": 2, "empty_thinking": 1, "unverified": 1}


@pytest.mark.parametrize("text,ref,ok", [("The capital of France is Paris.", "Paris", True),
                                         ("Paris, of course.", "paris", True),
                                         ("It is the Eiffel Tower.", "Eiffel Tower", True),
                                         ("The answer is 12.", "2", False),
                                         ("The capital is Lyon.", "Paris", False)])
def test_freeform_accepts_a_correct_sentence(text, ref, ok):
    assert get_family("freeform").verify(text, ref) is ok


# ------------------------------------------------------------------ item 12: sizes and held-out splits
def test_a_size_that_cuts_an_import_is_said(tmp_path, caplog):
    from distill_lab.stages.generate.recipe import build_problems

    recs = [{"messages": [{"role": "user", "content": f"Question {i} about cats?"},
                          {"role": "assistant", "content": f"Answer {i}.", "reasoning_content": "r"}]}
            for i in range(12)]
    path = _jsonl(tmp_path / "t.jsonl", recs)
    cfg = compose_config(["recipe.families=[]", "recipe.size=5", "recipe.test_size=3", "recipe.ood_size=0",
                          f"recipe.sources=[{{kind: teacher_dataset, path: '{path}'}}]"])
    with caplog.at_level("WARNING", logger="distill_lab.stages.generate.recipe"):
        res = build_problems(cfg.recipe)
    assert len(res.imported_rows) == 5
    assert "offers 12 train rows; recipe.size=5 and the mix keep 5" in caplog.text
    assert "recipe.test_size=3 asked for test prompts, but no family or source of the recipe offers any" in caplog.text


def test_a_dataset_dicts_held_out_splits_stay_held_out(tmp_path):
    import datasets

    def part(tag, n):
        return datasets.Dataset.from_list([{"q": f"{tag} question {i}?", "a": f"{tag}{i}"} for i in range(n)])

    datasets.DatasetDict({"train": part("tr", 3), "test": part("te", 2), "validation": part("va", 2)}).save_to_disk(
        str(tmp_path / "dd"))
    items = load_source(SourceSpec(kind="hf", path=str(tmp_path / "dd"), prompt_field="q", reference_field="a",
                                   shuffle=False))
    assert [p.prompt for p in items.problems["train"]] == [f"tr question {i}?" for i in range(3)]
    assert sorted(p.prompt for p in items.problems["test"]) == sorted(
        [f"te question {i}?" for i in range(2)] + [f"va question {i}?" for i in range(2)])
    one = load_source(SourceSpec(kind="hf", path=str(tmp_path / "dd"), prompt_field="q", hf_split="test"))
    assert len(one.problems["test"]) == 2 and not one.problems["train"]


def test_hf_split_on_a_single_dataset_is_an_error(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"q": "A?"}]).save_to_disk(str(tmp_path / "single"))
    with pytest.raises(SourceError, match=r"hf_split='test', but this is a single Dataset .*recipe\.sources\.split=test"):
        load_source(SourceSpec(kind="hf", path=str(tmp_path / "single"), prompt_field="q", hf_split="test"))


# ------------------------------------------------------------------ item 13: errors before any row
def test_prompt_sources_with_the_oracle_fail_before_any_row(tmp_path):
    from distill_lab.stages.generate.run import run

    path = _jsonl(tmp_path / "p.jsonl", [{"prompt": f"Name a colour number {i}."} for i in range(4)])
    cfg = compose_config(["student=tiny", "recipe.size=8", "recipe.test_size=0", "recipe.ood_size=0",
                          f"recipe.sources=[{{kind: jsonl, path: '{path}'}}]", f"generate.output_dir={tmp_path / 'ds'}"],
                         stage="generate")
    with pytest.raises(ConfigError, match=r"^teacher\.provider: the oracle teacher cannot answer 4 prompt\(s\)"):
        run(cfg, tmp_path)
    assert not (tmp_path / "ds").exists()


def test_skipped_records_are_said_with_strict_false(tmp_path, caplog):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "Fine?"}\nnot json\n{"other": 1}\n')
    with caplog.at_level("WARNING", logger="distill_lab.stages.generate.sources"):
        items = load_source(SourceSpec(kind="jsonl", path=str(path)), strict=False)
    assert len(items.problems["train"]) == 1
    assert "skipped 2 of 3 records (recipe.strict=false)" in caplog.text and "bad.jsonl:2" in caplog.text


def _cli(args, cwd):
    exe = Path(sys.executable).with_name("distill-lab")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_cli_source_errors_are_one_line_and_run_dir_keeps_hydras_output(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    out = _cli(["generate", "student=tiny", f"recipe.sources=[{{kind: jsonl, path: '{bad}'}}]",
                f"run_dir={tmp_path / 'r1'}"], cwd)
    assert out.returncode == EXIT_CONFIG, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "bad.jsonl:1: not valid JSON" in out.stderr
    # item 14: with run_dir=, Hydra's .hydra/ and job log go there, not into ./outputs
    out = _cli(["generate", "student=tiny", "recipe.size=3", "recipe.test_size=1", "recipe.ood_size=1",
                f"run_dir={tmp_path / 'r2'}"], cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (cwd / "outputs").exists() and list(cwd.iterdir()) == []
    assert (tmp_path / "r2" / ".hydra" / "config.yaml").exists() and (tmp_path / "r2" / "manifest.json").exists()
