"""Benchmark suites: the hub schemas loaded through ``datasets`` from local fixture files (JSONL, CSV,
Parquet, save_to_disk folders), the field's prompt formats, and clear errors for bad files and configs."""

from __future__ import annotations

import json

import pytest

from distill_lab.config import ConfigError
from distill_lab.stages.evaluate.suites.loader import suite_prompts
from tests.bench_support import fixture
from tests.conftest import compose_config


def _suite(name: str, *overrides: str):
    cfg = compose_config(["student=tiny", f"eval/suite={name}", f"eval.suite.path={fixture(name)}", *overrides],
                         stage="eval")
    return cfg.eval.suite


def test_every_suite_loads_its_fixture_in_the_hub_schema():
    got = {}
    for name in ("gsm8k", "math500", "aime24", "aime25", "gpqa_diamond", "ifeval"):
        prompts, items = suite_prompts(_suite(name))
        got[name] = [(p.prompt_id, p.reference) for p in prompts]
        assert all(p.split == "test" and p.task is None for p in prompts)
        assert set(items) == {p.prompt_id for p in prompts}
    assert got["gsm8k"] == [("gsm8k-0", "0.5"), ("gsm8k-1", "1/2"), ("gsm8k-2", "3"), ("gsm8k-3", "2400")]
    assert [r for _, r in got["math500"]] == ["\\frac{1}{2}", "0.5", "1/2", "3"]
    assert got["math500"][0][0] == "test/prealgebra/1.json"  # MATH-500's unique_id
    assert got["aime24"] == [("aime24-60", "24"), ("aime24-61", "1")]
    assert got["aime25"] == [("aime25-0", "12"), ("aime25-1", "6")]  # integer answers become strings
    assert [pid for pid, _ in got["gpqa_diamond"]] == ["gpqa-rec0AbC1", "gpqa-rec0AbC2", "gpqa-rec0AbC3"]
    assert got["ifeval"] == [("ifeval-1000", None), ("ifeval-1001", None), ("ifeval-1002", None)]


def test_prompt_formats():
    (p, *_), _ = suite_prompts(_suite("math500"))
    assert p.messages == [{"role": "user", "content": "Compute $\\frac{3}{6}$ in lowest terms.\nPlease reason step "
                                                      "by step, and put your final answer within \\boxed{}."}]
    prompts, items = suite_prompts(_suite("gpqa_diamond"))
    text = prompts[0].user_text
    assert text.startswith("Answer the following multiple choice question. The last line of your response should "
                           "be of the following format: 'Answer: $LETTER'")
    it = items[prompts[0].prompt_id]
    # the correct option sits at the gold letter, the four options are all shown once
    assert it.choices[ord(it.reference) - ord("A")] == "The photon"
    assert sorted(it.choices) == sorted(["The photon", "The gluon", "The W boson", "The graviton"])
    for j, c in enumerate(it.choices):
        assert f"\n{'ABCD'[j]}) {c}" in text
    # the shuffle is per question and repeatable; another seed gives another order somewhere
    again = suite_prompts(_suite("gpqa_diamond"))[1]
    assert {k: v.choices for k, v in again.items()} == {k: v.choices for k, v in items.items()}
    other = suite_prompts(_suite("gpqa_diamond", "eval.suite.choice_seed=1"))[1]
    assert {k: v.choices for k, v in other.items()} != {k: v.choices for k, v in items.items()}
    assert sorted({v.reference for v in items.values()}) != ["A"]  # not always the first option
    ip, ii = suite_prompts(_suite("ifeval"))
    assert ip[0].user_text.startswith("Write a short note about the sea.")
    assert ii["ifeval-1001"].extra["kwargs"][0]["num_words"] == 5
    assert _suite("gsm8k").max_new_tokens == 8192 and _suite("aime24").max_new_tokens == 32768


def test_parquet_and_save_to_disk_sources(tmp_path):
    import datasets

    rows = [json.loads(x) for x in fixture("math500").read_text().splitlines()]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "math.parquet"))
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    a = suite_prompts(_suite("math500", f"eval.suite.path={tmp_path / 'math.parquet'}"))[0]
    b = suite_prompts(_suite("math500", f"eval.suite.path={tmp_path / 'saved'}"))[0]
    assert [p.reference for p in a] == [p.reference for p in b] == ["\\frac{1}{2}", "0.5", "1/2", "3"]
    with pytest.raises(ValueError, match=r"has splits \['test'\], not 'train'"):
        suite_prompts(_suite("math500", f"eval.suite.path={tmp_path / 'saved'}", "eval.suite.split=train"))
    c = suite_prompts(_suite("math500", "eval.suite.limit=2"))[0]
    assert len(c) == 2


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_bad_files_are_named(tmp_path):
    bad = _write(tmp_path / "g.jsonl", [{"question": "q", "answer": "no final line"}])
    with pytest.raises(ValueError, match=r"g.jsonl row 0: column 'answer' has no '#### <final answer>' line"):
        suite_prompts(_suite("gsm8k", f"eval.suite.path={bad}"))
    wrong = _write(tmp_path / "w.jsonl", [{"prompt": "q", "reference": "1"}])
    with pytest.raises(ValueError, match=r"w.jsonl is not in the math500 schema: missing column\(s\) \['problem', 'answer'\]"):
        suite_prompts(_suite("math500", f"eval.suite.path={wrong}"))
    dup = _write(tmp_path / "d.jsonl", [{"problem": "a", "answer": "1", "unique_id": "x"},
                                         {"problem": "b", "answer": "2", "unique_id": "x"}])
    with pytest.raises(ValueError, match="d.jsonl row 1: id 'math500-x'|d.jsonl row 1: id 'x' appears twice"):
        suite_prompts(_suite("math500", f"eval.suite.path={dup}"))
    ife = _write(tmp_path / "i.jsonl", [{"key": 1, "prompt": "p", "instruction_id_list": ["a", "b"], "kwargs": [{}]}])
    with pytest.raises(ValueError, match="i.jsonl row 0: column 'kwargs' must be a list of one dict per instruction"):
        suite_prompts(_suite("ifeval", f"eval.suite.path={ife}"))
    with pytest.raises(FileNotFoundError, match="eval.suite.path: no such file or folder"):
        suite_prompts(_suite("gsm8k", f"eval.suite.path={tmp_path / 'none.jsonl'}"))
    with pytest.raises(ValueError, match="unknown file type '.txt'"):
        suite_prompts(_suite("gsm8k", f"eval.suite.path={_write(tmp_path / 'x.txt', [{}])}"))


@pytest.mark.parametrize("overrides, field", [
    (["eval/suite=gsm8k", "eval.suite.name=mmlu"], "eval.suite.name"),
    (["eval/suite=gsm8k", "eval.suite.max_new_tokens=0"], "eval.suite.max_new_tokens"),
    (["eval/suite=gpqa_diamond", "eval.suite.prompt_template='Q: {question}'"], "eval.suite.prompt_template"),
    (["eval/suite=gsm8k", "eval.backend.name=openai_compat", "eval.backend.student_model=s"], "eval.backend.base_url"),
    (["eval/suite=gsm8k", "eval.backend.name=openai_compat", "eval.backend.base_url=http://127.0.0.1:1/v1"],
     "eval.backend.student_model"),
    (["eval/suite=gsm8k", "eval.backend.name=vllm"], "eval.backend.name"),
    (["eval.backend.name=openai_compat", "eval.backend.base_url=http://x/v1", "eval.backend.student_model=s"],
     "eval.backend.name"),
    (["eval/suite=gsm8k", "eval.greedy=false"], "eval.greedy"),
    (["eval/suite=gsm8k", "eval.teacher_max_cost_usd=-1"], "eval.teacher_max_cost_usd"),
    (["eval/suite=gsm8k", "eval.dataset_dir=/tmp/x"], "eval.suite"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        compose_config(["student=tiny", *overrides], stage="eval")


def test_r1_preset():
    ec = compose_config(["student=tiny", "eval=r1", "eval/suite=aime24"], stage="eval").eval
    assert (ec.greedy, ec.n_samples, ec.temperature, ec.top_p) == (False, 8, 0.6, 0.95)
    assert ec.suite.name == "aime24" and ec.suite.hub_id == "HuggingFaceH4/aime_2024"
