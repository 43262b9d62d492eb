"""Held-out prompts from a dataset folder, and external JSONL suites (with clear errors)."""

from __future__ import annotations

import json

import pytest

from distill_lab.artifacts.rows import make_row, save_dataset
from distill_lab.stages.common import run_stage
from distill_lab.stages.evaluate.prompts import load_heldout, load_suite
from distill_lab.teachers.base import TeacherReply
from tests.conftest import compose_config
from tests.eval_support import TEACHER_FP, addition_problem, memorizer_dir


def test_heldout_groups_teacher_samples_per_prompt(tmp_path):
    p1, p2, p3 = addition_problem("test", 1, 2), addition_problem("test", 3, 4), addition_problem("ood", 10000, 5)
    rows = [make_row(p1, 1, TEACHER_FP, TeacherReply("The answer is 4.", "wrong"), False),
            make_row(p1, 0, TEACHER_FP, TeacherReply("The answer is 3.", "1 + 2 = 3"), True),
            make_row(p2, 0, TEACHER_FP, TeacherReply("The answer is 7.", None), True),
            make_row(p3, 0, TEACHER_FP, TeacherReply("The answer is 10005.", "x"), True),
            make_row(addition_problem("train", 5, 5), 0, TEACHER_FP, TeacherReply("The answer is 10.", "x"), True)]
    save_dataset(rows, tmp_path)
    ps = load_heldout(tmp_path, ["test", "ood"])
    assert [p.prompt_id for p in ps] == [p1.prompt_id, p2.prompt_id, p3.prompt_id]
    assert ps[0].teacher_outputs == ["<think>\n1 + 2 = 3\n</think>\n\nThe answer is 3.", "<think>\nwrong\n</think>\n\nThe answer is 4."]
    assert ps[1].teacher_outputs == ["The answer is 7."]  # no reasoning: no think block
    assert ps[0].messages == [{"role": "user", "content": "What is 1 + 2?"}] and ps[0].reference == "3"
    assert [p.split for p in load_heldout(tmp_path, ["test", "ood"], max_prompts=1)] == ["test", "ood"]
    with pytest.raises(ValueError, match=r"no rows in splits \['test'\] \(eval.splits\)"):
        load_heldout(_only_train(tmp_path), ["test"])
    with pytest.raises(FileNotFoundError, match="no rows.jsonl"):
        load_heldout(tmp_path / "missing", ["test"])


def _only_train(tmp_path):
    d = tmp_path / "train_only"
    save_dataset([make_row(addition_problem("train", 5, 5), 0, TEACHER_FP, TeacherReply("The answer is 10.", "x"), True)], d)
    return d


def _write(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_suite_fields_and_defaults(tmp_path):
    f = _write(tmp_path / "suite.jsonl", [
        {"prompt": "What is the capital of France?", "reference": "Paris", "teacher_answer": "The answer is Paris."},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"},
                      {"role": "assistant", "content": "4"}], "reference": 4, "task": "addition",
         "category": "reasoning", "split": "ood", "id": "q2"},
        "",
    ])
    a, b = load_suite(f)
    assert (a.category, a.split, a.task, a.reference, a.teacher_outputs) == ("knowledge", "test", None, "Paris",
                                                                             ["The answer is Paris."])
    assert b.prompt_id == "q2" and b.reference == "4" and b.task == "addition" and b.split == "ood"
    assert b.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]
    assert b.user_text == "What is 2 + 2?"


@pytest.mark.parametrize("line,match", [
    ('{"prompt": "x"', r"suite.jsonl:2: not valid JSON"),
    ({"reference": "1"}, r"suite.jsonl:2: field 'prompt'"),
    ({"prompt": "x", "category": "vibes"}, r"suite.jsonl:2: field 'category' is 'vibes'"),
    ({"prompt": "x", "split": "dev"}, r"suite.jsonl:2: field 'split' is 'dev'"),
    ({"prompt": "x", "task": "no_such_family"}, r"suite.jsonl:2: field 'task'.*no_such_family"),
    ('[1, 2]', r"suite.jsonl:2: expected a JSON object"),
])
def test_suite_errors_name_file_line_and_field(tmp_path, line, match):
    f = _write(tmp_path / "suite.jsonl", [{"prompt": "ok"}, line])
    with pytest.raises(ValueError, match=match):
        load_suite(f)


def test_suite_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval.suite_file: no such file"):
        load_suite(tmp_path / "none.jsonl")


def test_eval_stage_on_an_external_suite(tmp_path):
    """A suite without task families (generic verifier), teacher answers for some prompts only."""
    f = _write(tmp_path / "suite.jsonl", [
        {"prompt": "What is 1000 + 23?", "reference": "1023", "teacher_answer": "The answer is 1023."},
        {"prompt": "Name the number after 1022.", "reference": "1023", "teacher_answer": "The answer is 1023."},
        {"prompt": "What is 3 + 4?", "reference": "7", "teacher_answer": "The answer is 8."},
        {"prompt": "What is 2 + 2?", "reference": "4"},
    ])
    cfg = compose_config(["student=tiny"], stage="eval")
    adapter = memorizer_dir(cfg.student)
    cfg = compose_config(["student=tiny", f"eval.suite_file={f}", f"eval.adapter_dir={adapter}", "eval.include_base=false",
                          "eval.max_new_tokens=30", "eval.allow_truncation=true", "eval.progress=false", "eval.bootstrap=50", "hardware.threads=1"],
                         stage="eval")
    run_stage("eval", cfg, tmp_path / "run")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(m["models"]) == {"student", "teacher"}
    st = m["models"]["student"]["splits"]["test"]
    assert (st["n"], st["correct"]) == (4, 2)  # says 1023 to everything
    te = m["models"]["teacher"]["splits"]["test"]
    assert (te["n"], te["correct"]) == (3, 2)
    assert m["models"]["student"]["families"]["generic"]["n"] == 4
    ret = m["retention"]["student"]["overall"]  # paired on the 3 prompts with a teacher answer: (2/3) / (2/3)
    assert ret["n"] == 3 and ret["value"] == pytest.approx(1.0)


def test_teacher_asked_live_for_suite_prompts(tmp_path):
    """eval.teacher_live: prompts without teacher answers go to the teacher group (the oracle restates
    the reference of free-form prompts); prompts with one keep it."""
    f = _write(tmp_path / "suite.jsonl", [
        {"prompt": "What is the capital of France?", "reference": "Paris"},
        {"prompt": "What is 3 + 4?", "reference": "7", "teacher_answer": "The answer is 8."},
    ])
    cfg = compose_config(["student=tiny", f"eval.suite_file={f}", "eval.teacher_live=true", "eval.max_new_tokens=4", "eval.allow_truncation=true",
                          "eval.progress=false", "eval.bootstrap=20", "hardware.threads=1"], stage="eval")
    run_stage("eval", cfg, tmp_path / "run")
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["teacher_live"]["asked"] == 1 and m["teacher_live"]["cost_usd"] == 0.0
    assert m["teacher_live"]["teacher"]["provider"] == "oracle"
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    teacher = {r["prompt"]: r for r in rows if r["model"] == "teacher" and r["kind"] == "greedy"}
    assert teacher["What is the capital of France?"]["answer"] == "The answer is Paris."
    assert teacher["What is the capital of France?"]["correct"] and not teacher["What is 3 + 4?"]["correct"]
    assert m["models"]["teacher"]["overall"]["accuracy"] == 0.5


def test_teacher_asked_live_reports_what_the_replies_cost(tmp_path, monkeypatch):
    """The live teacher's spend is each reply's billed usage at ``teacher.prices`` (replies carry usage;
    before, the held-out path summed a cost field only the generate engine fills, and always said $0)."""
    from distill_lab.teachers.cost import max_request_cost
    from tests.fake_api.anthropic_server import AnthropicFake, State
    from tests.fake_api.harness import SECRET

    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State()).start()
    try:
        f = _write(tmp_path / "suite.jsonl", [{"prompt": "What is 2 + 2?", "reference": "4"},
                                               {"prompt": "What is 3 + 3?", "reference": "6"}])
        cfg = compose_config(["student=tiny", "teacher=anthropic", f"teacher.base_url={srv.url}",
                              f"eval.suite_file={f}", "eval.teacher_live=true", "eval.max_new_tokens=4", "eval.allow_truncation=true",
                              "eval.progress=false", "eval.bootstrap=20", "hardware.threads=1"], stage="eval")
        run_stage("eval", cfg, tmp_path / "run")
    finally:
        srv.stop()
    live = json.loads((tmp_path / "run" / "metrics.json").read_text())["teacher_live"]
    assert live["asked"] == 2 == len([r for r in srv.state.requests if r["path"] == "/v1/messages"])
    worst = 2 * max_request_cost(200, cfg.teacher.max_tokens, cfg.teacher.prices)
    assert 0 < live["cost_usd"] < worst
