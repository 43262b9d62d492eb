"""eval.teacher_live costs money: the config is checked before the live teacher is asked. Over the local fake
Anthropic and OpenAI servers: a bad eval.adapter_dir, or a budget refused on the answers the prompts already
carry, fails with the field named and the server never asked; a budget that needs the live answers is checked
right after them; a broken math-verify install fails before any request or model load."""

from __future__ import annotations

import json
import sys

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.common import run_stage
from tests.conftest import compose_config
from tests.fake_api.harness import SECRET

LONG = "<think>\n" + " ".join(["carry the one"] * 40) + "\n</think>\n\nThe answer is 7."


@pytest.fixture(params=["anthropic", "openai_compat"])
def live(request, monkeypatch):
    """(teacher group overrides, fake server) for one paid provider, served on 127.0.0.1."""
    if request.param == "anthropic":
        from tests.fake_api.anthropic_server import AnthropicFake, State

        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        srv = AnthropicFake(State()).start()
        ov = ["teacher=anthropic", f"teacher.base_url={srv.url}"]
    else:
        from tests.fake_api.openai_server import OpenAIFake

        monkeypatch.setenv("OPENAI_API_KEY", "sk-or-test-0123456789abcdef")
        srv = OpenAIFake().start()
        ov = ["teacher=openai_compat", f"teacher.base_url={srv.url}/v1"]
    yield ov, srv
    srv.stop()


def _suite(tmp_path, *, with_answer: bool = True, task: str | None = "addition"):
    lines = [{"prompt": "What is 3 + 4?", "reference": "7", "task": task, "split": "test", "id": "live1"}]
    if with_answer:
        lines.append({"prompt": "What is 2 + 5?", "reference": "7", "task": task, "split": "test", "id": "have1",
                      "teacher_answer": LONG})
    f = tmp_path / "suite.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return f


def _cfg(tmp_path, teacher_ov, *extra, **suite_kw):
    return compose_config(["student=tiny", *teacher_ov, f"eval.suite_file={_suite(tmp_path, **suite_kw)}",
                           "eval.teacher_live=true", "eval.progress=false", "eval.bootstrap=20", "hardware.threads=1",
                           "generate.retry_base_s=0.01", "generate.retry_cap_s=0.05", *extra], stage="eval")


def _bad_adapters(tmp_path):
    wrong = tmp_path / "wrong_base"  # a peft adapter whose target modules this student lacks
    wrong.mkdir()
    (wrong / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "base_model_name_or_path": "other",
         "target_modules": ["no_such_projection"]}))
    empty = tmp_path / "empty"
    empty.mkdir()
    return [tmp_path / "missing", empty, wrong]


def test_a_bad_adapter_dir_fails_before_the_live_teacher_is_asked(tmp_path, live):
    ov, srv = live
    bad_dirs = _bad_adapters(tmp_path)
    if "teacher=openai_compat" in ov:  # the adapter check is the provider's same code: the model load once
        bad_dirs = bad_dirs[:2]
    for bad in bad_dirs:
        cfg = _cfg(tmp_path, ov, f"eval.adapter_dir={bad}", "eval.max_new_tokens=auto")
        with pytest.raises(ConfigError, match=rf"^eval\.adapter_dir: {bad} cannot be loaded onto student 'tiny'"):
            run_stage("eval", cfg, tmp_path / "run")
        assert srv.state.requests == [], bad
        assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_budget_refused_on_the_answers_at_hand_fails_before_the_live_teacher_is_asked(tmp_path, live):
    ov, srv = live
    cfg = _cfg(tmp_path, ov, "eval.max_new_tokens=4", "eval.include_base=true")
    with pytest.raises(ConfigError, match=r"^eval\.max_new_tokens: 4 is below the teacher's own answers.*prompt have1"):
        run_stage("eval", cfg, tmp_path / "run")
    assert srv.state.requests == []


def test_a_budget_that_needs_the_live_answers_is_checked_right_after_them(tmp_path, live):
    """The only answers are the live teacher's: the check needs that paid call (said in the code), and still
    refuses the budget before any model is loaded or anything is written."""
    ov, srv = live
    cfg = _cfg(tmp_path, ov, "eval.max_new_tokens=2", "eval.include_base=true", with_answer=False)
    with pytest.raises(ConfigError, match=r"^eval\.max_new_tokens: 2 is below the teacher's own answers.*prompt live1"):
        run_stage("eval", cfg, tmp_path / "run")
    assert len(srv.state.requests) == 1
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_broken_math_verify_fails_at_stage_start(tmp_path, live, monkeypatch):
    """A prompt without a task family is scored by math-verify: without it the stage stops before the live
    teacher, the adapter or any generation."""
    import distill_lab.stages.evaluate.run as eval_run
    from distill_lab.tasks.verdicts import MathVerifyMissing

    ov, srv = live
    monkeypatch.setitem(sys.modules, "math_verify", None)  # `import math_verify` raises ImportError

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before math-verify was checked")

    monkeypatch.setattr(eval_run, "load_placed_student", no_model)
    monkeypatch.setattr(eval_run, "generate", no_model)
    cfg = _cfg(tmp_path, ov, "eval.max_new_tokens=auto", "eval.include_base=true", task=None)
    with pytest.raises(MathVerifyMissing, match="math-verify cannot be imported"):
        run_stage("eval", cfg, tmp_path / "run")
    assert srv.state.requests == []
    # rows with a task family never need it: the same run with families gets past the check
    cfg = _cfg(tmp_path, ov, "eval.max_new_tokens=auto", "eval.include_base=true")
    with pytest.raises(AssertionError, match="a model was loaded"):
        run_stage("eval", cfg, tmp_path / "run")
