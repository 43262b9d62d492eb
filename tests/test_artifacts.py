"""The typed records that cross stage boundaries: metrics.json and dataset.json read and written through
their types, versioned, with errors that name the file."""

from __future__ import annotations

import json

import pytest

from distill_lab.artifacts.dataset import DatasetInfo, DatasetInfoError
from distill_lab.artifacts.metrics import SAMPLE_METRICS, EvalMetrics, MetricsError
from distill_lab.stages.common import run_stage


def _block(acc: float, n: int = 10) -> dict:
    return {"n": n, "correct": round(acc * n), "accuracy": acc, "accuracy_ci": [acc / 2, (1 + acc) / 2]}


def _stat(v: float) -> dict:
    return {"value": v, "ci": [v - 0.1, v + 0.1], "n": 10, "a_accuracy": v, "b_accuracy": 1.0}


def _metrics() -> EvalMetrics:
    split = {**_block(0.5), "categories": {"reasoning": _block(0.4), "format": _block(0.6)}, "families": {}}
    teacher = {**_block(1.0), "categories": {"reasoning": _block(1.0), "format": _block(1.0)}, "families": {}}
    cmp = {"overall": _stat(0.5), "categories": {"reasoning": _stat(0.4)},
           "splits": {"test": {"all": _stat(0.5), "categories": {"reasoning": _stat(0.4), "format": _stat(0.6)}}}}
    return EvalMetrics(models={"teacher": {"overall": teacher, "splits": {"test": teacher}, "categories": {}, "families": {}},
                               "student": {"overall": split, "splits": {"test": split, "ood": _block(0.0)},
                                           "categories": {}, "families": {}}},
                       retention={"student": cmp}, gain=cmp, student="tiny", dataset_dir="/d", prompts={"test": 10},
                       extra={"timings_s": {"student": 1.5}})


def test_metrics_round_trip_and_accessors(tmp_path):
    m = _metrics()
    m.write(tmp_path)
    back = EvalMetrics.load(tmp_path)
    assert back == m
    assert back.to_json()["timings_s"] == {"student": 1.5}  # keys outside the schema survive
    assert back.model_names() == ["student", "teacher"]  # base, student, teacher order
    assert back.splits() == ["test", "ood"]
    assert back.accuracy("student", "test") == 0.5
    assert back.accuracy("student", "test", "reasoning") == 0.4
    assert back.accuracy("base", "test") is None
    assert back.categories("test") == ["format", "reasoning"]
    assert back.retention_stat("student", "test")["value"] == 0.5
    assert back.retention_stat("student", "test", "format")["value"] == 0.6
    assert back.retention_stat("student", "ood") is None
    assert back.gain_stat("test", "reasoning")["value"] == 0.4
    assert back.retention_model() == "student"


@pytest.mark.parametrize("doc, msg", [
    ({"schema_version": 2, "models": {}}, "schema_version 2"),
    ({"schema_version": 1}, "no 'models'"),
    ({"schema_version": 1, "models": {"student": {"overall": {}}}}, "models.student has no 'splits'"),
])
def test_metrics_reject_other_schemas_naming_the_file(tmp_path, doc, msg):
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    with pytest.raises(MetricsError, match=msg) as e:
        EvalMetrics.load(tmp_path)
    assert str(tmp_path / "metrics.json") in str(e.value)


def test_metrics_file_with_bad_json_names_the_line(tmp_path):
    (tmp_path / "metrics.json").write_text('{"schema_version": 1,\n "models": }')
    with pytest.raises(MetricsError, match=r"metrics\.json:2: not valid JSON"):
        EvalMetrics.load(tmp_path)


def test_sample_metrics_compute_over_greedy_outputs():
    truncated = next(m for m in SAMPLE_METRICS if m.name == "truncated_share")
    recs = [{"truncated": True}, {"truncated": False}, {"truncated": False}, {"truncated": True}]
    assert truncated.compute(recs) == 0.5
    assert truncated.cell(0.5) == "50.0%" and truncated.cell(None) == "–"
    # older records have only the runaway flag
    assert truncated.compute([{"runaway": True}, {"runaway": False}, {"runaway": False}]) == pytest.approx(1 / 3)
    unclosed = next(m for m in SAMPLE_METRICS if m.name == "unclosed_thinking_share")
    assert unclosed.compute([{"unclosed_thinking": True}, {"think_unclosed": False}, {"think_unclosed": True},
                             {"unclosed_thinking": False}]) == 0.5
    sim = next(m for m in SAMPLE_METRICS if m.name == "style_similarity")
    assert sim.compute([{"style_similarity": 0.2}, {"style_similarity": None}, {"style_similarity": 0.4}]) == \
        pytest.approx(0.3)


def test_empty_answer_share_counts_outputs_without_an_answer(tmp_path):
    empty = next(m for m in SAMPLE_METRICS if m.name == "empty_answer_share")
    assert empty.compute([{"answer_chars": 0}, {"answer_chars": 12}, {"answer_chars": None}, {"answer_chars": 0},
                          {"answer_chars": 3}]) == 0.5
    assert empty.cell(0.25) == "25.0%"


def test_a_sample_metric_reaches_the_block_and_the_report(tmp_path):
    """A SampleMetric is computed into every block by the eval stage and shown by the report."""
    from distill_lab.stages.evaluate.aggregate import block

    recs = [{"prompt_id": f"p{i}", "kind": "greedy", "correct": i == 0, "extracted": "1" if i else None,
             "think_unclosed": False, "thinking_chars": 5, "output_tokens": 9, "answer_chars": [0, 4, 0, 2][i],
             "runaway": i == 1, "style_similarity": None, "score": None} for i in range(4)]
    b = block(recs, confidence=0.95, pass_k=[1])
    assert b["empty_answer_share"] == 0.5 and b["runaway_share"] == 0.25 and b["truncated_share"] == 0.25


def test_dataset_info_round_trip_and_errors(tmp_path):
    assert DatasetInfo.load(tmp_path) is None  # a folder made elsewhere has none
    info = DatasetInfo(recipe="arithmetic", size=100, test_size=20, ood_size=20, recipe_seed=0,
                       teacher_provider="oracle", teacher_model="oracle-v1", effort="high",
                       rows={"train": 100, "test": 20}, cost_usd=0.0)
    info.write(tmp_path)
    assert DatasetInfo.load(tmp_path) == info
    (tmp_path / "dataset.json").write_text(json.dumps({"schema_version": 1, "recipe": "x"}))
    with pytest.raises(DatasetInfoError, match=r"dataset\.json: missing size, test_size"):
        DatasetInfo.load(tmp_path)


def test_generate_writes_the_dataset_record(make_config, tmp_path):
    cfg = make_config(["teacher.effort=high", "recipe.size=12", "recipe.test_size=4", "recipe.ood_size=3",
                       "generate.progress=false"], stage="generate")
    res = run_stage("generate", cfg, tmp_path / "g")
    info = DatasetInfo.load(res.artifacts["dataset"])
    assert (info.effort, info.size, info.test_size, info.ood_size) == ("high", 12, 4, 3)
    assert (info.teacher_provider, info.teacher_model, info.recipe) == ("oracle", "oracle-v1", "arithmetic")
    assert info.rows["train"] + info.rows.get("rejected", 0) == 12 and info.rows["test"] == 4
