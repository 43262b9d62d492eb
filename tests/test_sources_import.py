"""Sources: every teacher-dataset shape loads into identical rows; field mapping; each bad input's error."""

from __future__ import annotations

import json

import pytest

from distill_lab.artifacts.rows import ROW_FIELDS, check_row
from distill_lab.stages.generate.config import RecipeConfig, SourceSpec
from distill_lab.stages.generate.recipe import build_problems
from distill_lab.stages.generate.sources import SourceError, load_source

THINK = "Column 1: 5 + 8 = 13. Write 3, carry 1.\nSo 345 + 678 = 1023."
ANSWER = "The answer is 1023."
USER = {"role": "user", "content": "What is 345 + 678?"}
META = {"reference": "1023", "task": "addition", "category": "reasoning", "split": "train", "model": "m1",
        "effort": "high"}

SHAPES = {
    "reasoning_content": {"role": "assistant", "content": ANSWER, "reasoning_content": THINK},
    "thinking": {"role": "assistant", "content": ANSWER, "thinking": THINK},
    "reasoning": {"role": "assistant", "content": ANSWER, "reasoning": THINK},
    "think_tags": {"role": "assistant", "content": f"<think>\n{THINK}\n</think>\n\n{ANSWER}"},
    "closing_tag_only": {"role": "assistant", "content": f"{THINK}\n</think>\n{ANSWER}"},
    "content_blocks": {"role": "assistant", "content": [{"type": "thinking", "thinking": THINK},
                                                         {"type": "text", "text": ANSWER}]},
}


def _jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def _record(shape: str, **extra):
    return {"messages": [USER, SHAPES[shape]], **META, **extra}


def _rows(spec: SourceSpec, **kw):
    items = load_source(spec, **kw)
    return [r for s in ("train", "test", "ood") for r in items.rows[s]]


def test_every_import_shape_gives_identical_rows(tmp_path):
    rows = {}
    for shape in SHAPES:
        path = _jsonl(tmp_path / f"{shape}.jsonl", [_record(shape)])
        rows[shape] = _rows(SourceSpec(kind="teacher_dataset", path=path))
    first = rows["reasoning_content"]
    assert len(first) == 1
    for shape, got in rows.items():
        assert got == first, shape
    row = first[0]
    check_row(row)
    assert set(ROW_FIELDS) <= set(row)
    assert row["messages"][-1] == {"role": "assistant", "content": ANSWER, "reasoning_content": THINK}
    assert row["task"] == "addition" and row["category"] == "reasoning" and row["reference"] == "1023"
    assert row["verified"] is True  # checked with the addition family's verifier
    assert row["teacher"]["provider"] == "import" and row["teacher"]["effort"] == "high"


def test_parquet_and_saved_hf_dataset_give_the_same_rows_as_jsonl(tmp_path):
    import datasets

    recs = [_record("thinking"), {**_record("think_tags"), "messages": [
        {"role": "user", "content": "What is 1 + 2?"}, {"role": "assistant", "content": "<think>1+2=3</think>The answer is 3."}],
        "reference": "3"}]
    ref = _rows(SourceSpec(kind="teacher_dataset", path=_jsonl(tmp_path / "a.jsonl", recs), shuffle=False))
    # Arrow needs one schema per column: store messages as JSON-compatible structs with every key present
    flat = [{**r, "messages": [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else "",
                                "thinking": m.get("thinking")} for m in r["messages"]]} for r in recs]
    datasets.Dataset.from_list(flat).to_parquet(str(tmp_path / "a.parquet"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(flat)}).save_to_disk(str(tmp_path / "hfdir"))
    pq = _rows(SourceSpec(kind="teacher_dataset", path=str(tmp_path / "a.parquet"), shuffle=False))
    hf = _rows(SourceSpec(kind="teacher_dataset", path=str(tmp_path / "hfdir"), shuffle=False))
    assert pq == ref and hf == ref and len(ref) == 2


def test_a_distill_lab_dataset_folder_reimports_as_is(tmp_path):
    from distill_lab.artifacts.rows import load_rows
    from distill_lab.stages.common import run_stage
    from tests.conftest import compose_config

    cfg = compose_config(["student=tiny", "recipe.size=6", "recipe.test_size=2", "recipe.ood_size=2",
                          f"generate.output_dir={tmp_path / 'ds'}"], stage="generate")
    run_stage("generate", cfg, tmp_path / "run")
    original = {r["id"]: r for r in load_rows(tmp_path / "ds")}
    imported = _rows(SourceSpec(kind="teacher_dataset", path=str(tmp_path / "ds")))
    assert len(imported) == len(original) == 10
    for r in imported:
        o = original[r["id"]]  # the same id: prompt, sample index and teacher fingerprint are kept
        assert {k: r[k] for k in ROW_FIELDS} == {k: o[k] for k in ROW_FIELDS}


def test_teacher_dataset_recipe_trains_without_generation(tmp_path):
    """generate with only a teacher_dataset source writes the imported rows (no teacher call)."""
    from distill_lab.artifacts.rows import load_rows
    from distill_lab.stages.common import run_stage
    from tests.conftest import compose_config

    recs = [{"messages": [{"role": "user", "content": f"What is {a} + {a + 1}?"},
                          {"role": "assistant", "content": f"<think>{a} + {a + 1} = {2 * a + 1}</think>"
                                                           f"The answer is {2 * a + 1}."}],
             "reference": str(2 * a + 1)} for a in range(100, 112)]
    path = _jsonl(tmp_path / "t.jsonl", recs)
    cfg = compose_config(["student=tiny", "recipe.families=[]", "recipe.size=12", "recipe.test_size=0",
                          "recipe.ood_size=0",
                          f"recipe.sources=[{{kind: teacher_dataset, path: '{path}', task: addition}}]",
                          f"generate.output_dir={tmp_path / 'ds'}"], stage="generate")
    run_stage("generate", cfg, tmp_path / "run")
    rows = load_rows(tmp_path / "ds", split="train")
    assert len(rows) == 12 and all(r["verified"] is True for r in rows)
    assert {r["messages"][-1]["reasoning_content"] for r in rows} == {f"{a} + {a + 1} = {2 * a + 1}" for a in range(100, 112)}


def test_prompt_source_field_mapping_and_hf_split(tmp_path):
    import datasets

    recs = [{"question": {"text": f"Capital number {i}?"}, "answer": f"City{i}", "split": "test" if i < 2 else "train"}
            for i in range(6)]
    path = _jsonl(tmp_path / "q.jsonl", recs)
    items = load_source(SourceSpec(kind="jsonl", path=path, prompt_field="question.text", reference_field="answer",
                                   category="knowledge", shuffle=False))
    assert [p.prompt for p in items.problems["test"]] == ["Capital number 0?", "Capital number 1?"]
    assert [p.reference for p in items.problems["train"]] == ["City2", "City3", "City4", "City5"]
    assert {p.task for p in items.problems["train"]} == {"freeform"}
    dd = datasets.DatasetDict({"validation": datasets.Dataset.from_list([{"q": "A?"}, {"q": "B?"}]),
                               "train": datasets.Dataset.from_list([{"q": "C?"}])})
    dd.save_to_disk(str(tmp_path / "hf"))
    items = load_source(SourceSpec(kind="hf", path=str(tmp_path / "hf"), prompt_field="q", hf_split="validation",
                                   split="ood", shuffle=False))
    assert [p.prompt for p in items.problems["ood"]] == ["A?", "B?"] and not items.problems["train"]
    with pytest.raises(SourceError, match=r"no split 'dev'; has \['train', 'validation'\]"):
        load_source(SourceSpec(kind="hf", path=str(tmp_path / "hf"), prompt_field="q", hf_split="dev"))


def test_parquet_prompt_source(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"prompt": "One?", "reference": "1"}, {"prompt": "Two?", "reference": None}]
                               ).to_parquet(str(tmp_path / "p.parquet"))
    items = load_source(SourceSpec(kind="parquet", path=str(tmp_path / "p.parquet"), shuffle=False))
    assert [(p.prompt, p.reference) for p in items.problems["train"]] == [("One?", "1"), ("Two?", None)]


BAD = {
    "not_json": ('{"prompt": "ok"}\n{"prompt": broken\n', r"b\.jsonl:2: not valid JSON"),
    "missing_field": ('{"prompt": "ok"}\n{"question": "no prompt here"}\n',
                      r"b\.jsonl:2: missing field 'prompt' \(recipe.sources.prompt_field\); fields present: \['question'\]"),
    "not_object": ('{"prompt": "ok"}\n[1, 2]\n', r"b\.jsonl:2: expected a JSON object, got list"),
    "bad_split": ('{"prompt": "ok"}\n{"prompt": "x", "split": "dev"}\n', r"b\.jsonl:2: field 'split' is 'dev'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_rows_name_file_line_and_field_or_are_skipped(tmp_path, case):
    text, pattern = BAD[case]
    (tmp_path / "b.jsonl").write_text(text)
    spec = SourceSpec(kind="jsonl", path=str(tmp_path / "b.jsonl"))
    with pytest.raises(SourceError, match=pattern):
        load_source(spec, strict=True)
    items = load_source(spec, strict=False)  # skipped and counted
    assert [p.prompt for p in items.problems["train"]] == ["ok"] and len(items.bad) == 1
    res = build_problems(RecipeConfig(families=[], sources=[spec], size=1, test_size=0, ood_size=0, strict=False))
    assert res.stats["sources"]["source:b.jsonl"]["bad_skipped"] == 1


def test_teacher_rows_without_messages_or_answer_are_named(tmp_path):
    path = _jsonl(tmp_path / "t.jsonl", [{"conversation": []}])
    with pytest.raises(SourceError, match=r"t\.jsonl:1: missing field 'messages'"):
        load_source(SourceSpec(kind="teacher_dataset", path=path))
    path = _jsonl(tmp_path / "u.jsonl", [{"messages": [USER, {"role": "assistant", "content": "<think>hm</think>"}]}])
    with pytest.raises(SourceError, match=r"u\.jsonl:1: the assistant turn has no answer text"):
        load_source(SourceSpec(kind="teacher_dataset", path=path))
    path = _jsonl(tmp_path / "w.jsonl", [{"messages": [USER, {"role": "assistant", "content": "<think>long..."}]}])
    with pytest.raises(SourceError, match=r"w\.jsonl:1: '<think>' in the assistant content is never closed"):
        load_source(SourceSpec(kind="teacher_dataset", path=path))
    path = _jsonl(tmp_path / "v.jsonl", [{"messages": [USER]}])
    with pytest.raises(SourceError, match=r"v\.jsonl:1: messages need a user turn and must end with an assistant"):
        load_source(SourceSpec(kind="teacher_dataset", path=path))


def test_empty_source_unknown_family_and_missing_file(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(SourceError, match=r"recipe.sources\[0\] \(.*e\.jsonl\): empty source"):
        load_source(SourceSpec(kind="jsonl", path=str(tmp_path / "e.jsonl")))
    path = _jsonl(tmp_path / "x.jsonl", [{"prompt": "a"}])
    with pytest.raises(SourceError, match=r"recipe.sources\[3\].task: unknown task family 'algebra'"):
        load_source(SourceSpec(kind="jsonl", path=path, task="algebra"), index=3)
    with pytest.raises(SourceError, match=r"nope\.jsonl: file not found"):
        load_source(SourceSpec(kind="jsonl", path=str(tmp_path / "nope.jsonl")))
    (tmp_path / "all_bad.jsonl").write_text("{oops\n")
    with pytest.raises(SourceError, match="no usable records"):
        load_source(SourceSpec(kind="jsonl", path=str(tmp_path / "all_bad.jsonl")), strict=False)


def test_rejected_rows_of_a_dataset_are_not_imported(tmp_path):
    recs = [_record("thinking"), {**_record("thinking", split="rejected"), "reject_reason": "max_tokens"}]
    items = load_source(SourceSpec(kind="teacher_dataset", path=_jsonl(tmp_path / "r.jsonl", recs)))
    assert items.rejected == 1 and items.count("train") == 1 and not items.bad


def test_repeated_prompts_are_samples_with_distinct_ids(tmp_path):
    recs = [_record("thinking"), {**_record("thinking"), "messages": [USER, {**SHAPES["thinking"], "thinking": "other"}]}]
    rows = _rows(SourceSpec(kind="teacher_dataset", path=_jsonl(tmp_path / "r.jsonl", recs), shuffle=False))
    assert [r["sample_index"] for r in rows] == [0, 1] and rows[0]["id"] != rows[1]["id"]
    assert rows[0]["prompt_id"] == rows[1]["prompt_id"]


@pytest.mark.slow  # datasets' folder builder and hub resolution: ~20 s on 2 cores
def test_hf_folder_of_data_files_and_unreachable_hub_id(tmp_path, monkeypatch):
    folder = tmp_path / "files"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", [{"text": "Alpha?", "gold": "a"}, {"text": "Beta?", "gold": "b"}])
    items = load_source(SourceSpec(kind="hf", path=str(folder), prompt_field="text", reference_field="gold",
                                   shuffle=False))
    assert [(p.prompt, p.reference) for p in items.problems["train"]] == [("Alpha?", "a"), ("Beta?", "b")]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="no-such-owner/no-such-dataset: cannot load as a Hugging Face dataset"):
        load_source(SourceSpec(kind="hf", path="no-such-owner/no-such-dataset"))


def test_oracle_refuses_external_prompts_it_cannot_solve(tmp_path):
    import asyncio

    from distill_lab.teachers.config import TeacherConfig
    from distill_lab.teachers.oracle import OracleTeacher

    path = _jsonl(tmp_path / "o.jsonl", [{"prompt": "What is 2 + 2?", "reference": "4"}])
    teacher = OracleTeacher(TeacherConfig())
    p = load_source(SourceSpec(kind="jsonl", path=path, task="addition")).problems["train"][0]
    with pytest.raises(ValueError, match=r"o\.jsonl:1 is labelled task 'addition' but was not generated"):
        asyncio.run(teacher.complete(p, 0))
    p = load_source(SourceSpec(kind="jsonl", path=path)).problems["train"][0]
    reply = asyncio.run(teacher.complete(p, 0))
    assert reply.content == "The answer is 4." and get_family_verify(reply.content, "4")


def get_family_verify(text, ref):
    from distill_lab.tasks import get_family

    return get_family("freeform").verify(text, ref)
