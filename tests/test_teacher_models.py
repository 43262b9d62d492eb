"""What each teacher config sends to the Messages API (issue 16 items 16, 17): the exact body fields and the
``anthropic-beta`` header per model, against the local fake, which refuses what the real API refuses."""

from __future__ import annotations

import pytest

from distill_lab.errors import ConfigError
from distill_lab.exit_codes import GenerationFailed
from distill_lab.stages.generate.run import run
from distill_lab.teachers.anthropic_models import EFFORT_BETA, MODELS, betas_for, facts
from tests.conftest import compose_config
from tests.fake_api import anthropic_server
from tests.fake_api.anthropic_server import AnthropicFake, State
from tests.fake_api.harness import SECRET, gen_config


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State()).start()
    yield srv
    srv.stop()


def _sent(srv, path="/v1/messages"):
    return [r for r in srv.state.requests if r["path"] == path]


@pytest.mark.parametrize("teacher,overrides,model,beta,thinking,effort", [
    ("anthropic", [], "claude-opus-5-5", None, {"type": "adaptive", "display": "summarized"}, "high"),
    ("anthropic", ["teacher.model=claude-opus-5", "teacher.effort=max"], "claude-opus-5", None,
     {"type": "adaptive", "display": "summarized"}, "max"),
    ("anthropic", ["teacher.model=claude-opus-4-8", "teacher.effort=xhigh"], "claude-opus-4-8", None,
     {"type": "adaptive", "display": "summarized"}, "xhigh"),
    ("anthropic_adaptive", [], "claude-opus-4-7", None, {"type": "adaptive", "display": "summarized"}, "high"),
    ("anthropic_sonnet", [], "claude-sonnet-4-6", None, {"type": "adaptive", "display": "summarized"}, "medium"),
    ("anthropic_opus45", [], "claude-opus-4-5", EFFORT_BETA, {"type": "enabled", "budget_tokens": 16000}, "high"),
    ("anthropic_opus45", ["teacher.effort=low"], "claude-opus-4-5", EFFORT_BETA,
     {"type": "enabled", "budget_tokens": 2048}, "low"),
    ("anthropic_opus45", ["teacher.output_effort=false"], "claude-opus-4-5", None,
     {"type": "enabled", "budget_tokens": 16000}, None),
    # not streamed: the same fields and header on the plain JSON surface
    ("anthropic", ["teacher.stream=false"], "claude-opus-5-5", None, {"type": "adaptive", "display": "summarized"},
     "high"),
    ("anthropic_opus45", ["teacher.stream=false"], "claude-opus-4-5", EFFORT_BETA,
     {"type": "enabled", "budget_tokens": 16000}, "high"),
])
def test_each_teacher_config_sends_what_its_model_takes(fake, tmp_path, teacher, overrides, model, beta, thinking,
                                                       effort):
    cfg = gen_config(teacher, fake.url, tmp_path / "ds", *overrides, size=2, test=0, ood=0)
    stream = cfg.teacher.stream
    res = run(cfg, tmp_path)
    assert res.summary["rows"] == 2 and res.incomplete is None
    sent = _sent(fake)
    assert len(sent) == 2
    for r in sent:
        b = r["body"]
        assert r["anthropic_beta"] == beta
        assert b["model"] == model and b["thinking"] == thinking
        assert b.get("output_config") == ({"effort": effort} if effort else None)
        assert bool(b.get("stream")) is stream


def test_batch_requests_carry_the_beta_header(fake, tmp_path):
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "teacher.batch=true", size=3, test=0, ood=0)
    res = run(cfg, tmp_path)
    assert res.summary["rows"] == 3
    (create,) = _sent(fake, "/v1/messages/batches")
    assert create["anthropic_beta"] == EFFORT_BETA
    assert {q["params"]["output_config"]["effort"] for q in create["body"]["requests"]} == {"high"}


def test_without_the_beta_header_the_api_refuses_and_the_run_stops(fake, tmp_path):
    """What happened before: effort on Opus 4.5 with no beta header is a 400 for every request."""
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "teacher.betas=[]", "generate.concurrency=1",
                     size=30, test=0, ood=0)
    with pytest.raises(GenerationFailed, match="refused the first 3 requests.*output_config"):
        run(cfg, tmp_path)
    assert len(_sent(fake)) == 3 and {r["anthropic_beta"] for r in _sent(fake)} == {None}


# ------------------------------------------------------------------ the model table (item 17)
def test_the_default_anthropic_teacher_is_a_current_model():
    cfg = compose_config(["teacher=anthropic"])
    assert cfg.teacher.model == "claude-opus-5-5" and facts(cfg.teacher.model) is MODELS["claude-opus-5-5"]
    assert cfg.teacher.thinking_mode == "adaptive" and cfg.teacher.allowed_efforts == list(MODELS["claude-opus-5-5"].efforts)


@pytest.mark.parametrize("overrides,field", [
    (["teacher=anthropic", "teacher.model=claude-opus-4-8", "teacher.thinking_mode=enabled"], "teacher.thinking_mode"),
    (["teacher=anthropic_opus45", "teacher.allowed_efforts=[low,medium,high,xhigh]", "teacher.max_tokens=40000",
      "teacher.effort=xhigh"], "teacher.effort"),
    (["teacher=anthropic", "teacher.model=claude-haiku-4-5", "teacher.thinking_mode=enabled"],
     "teacher.output_effort"),
    (["teacher=anthropic", "teacher.max_tokens=200000"], "teacher.max_tokens"),
])
def test_the_table_decides_where_no_models_api_reports(fake, tmp_path, overrides, field):
    fake.state.models_api = False  # a proxy without the Models API: the table alone
    cfg = gen_config(overrides[0].split("=")[1], fake.url, tmp_path / "ds", *overrides[1:], size=2, test=0, ood=0)
    with pytest.raises(ConfigError) as e:
        run(cfg, tmp_path)
    assert str(e.value).startswith(field + ":"), str(e.value)
    assert not _sent(fake)


def test_what_the_models_api_reports_takes_precedence_over_the_table(fake, tmp_path, monkeypatch):
    """The table says Opus 4.5 takes no xhigh; a Models API that reports it does is believed."""
    monkeypatch.setitem(anthropic_server.MODELS, "claude-opus-4-5",
                        (("enabled",), ("low", "medium", "high", "xhigh"), "active"))
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "teacher.allowed_efforts=[low,medium,high,xhigh]",
                     "teacher.max_tokens=40000", "teacher.effort=xhigh", size=2, test=0, ood=0)
    assert run(cfg, tmp_path).summary["rows"] == 2
    assert {r["body"]["output_config"]["effort"] for r in _sent(fake)} == {"xhigh"}


def test_an_unknown_model_must_say_its_beta_headers(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(anthropic_server.MODELS, "claude-next-9", (("adaptive",), ("low", "medium", "high"), "active"))
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.model=claude-next-9", size=2, test=0, ood=0)
    with pytest.raises(ConfigError) as e:
        run(cfg, tmp_path)
    assert str(e.value).startswith("teacher.betas: 'claude-next-9' is not in distill_lab's model table")
    assert not _sent(fake)


def test_an_unknown_model_runs_with_explicit_settings(fake, tmp_path, monkeypatch):
    monkeypatch.setitem(anthropic_server.MODELS, "claude-next-9", (("adaptive",), ("low", "medium", "high"), "active"))
    monkeypatch.setitem(anthropic_server.EFFORT_BETA, "claude-next-9", "effort-2099-01-01")
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.model=claude-next-9",
                     "teacher.betas=[effort-2099-01-01]", size=2, test=0, ood=0)
    assert run(cfg, tmp_path).summary["rows"] == 2
    assert {r["anthropic_beta"] for r in _sent(fake)} == {"effort-2099-01-01"}


def test_dated_snapshot_ids_map_to_their_alias():
    assert facts("claude-opus-4-5-20251101") is MODELS["claude-opus-4-5"] and facts("claude-opus-4-5x") is None
    assert betas_for("claude-opus-4-5-20251101", True, None) == [EFFORT_BETA]
    assert betas_for("claude-opus-4-5", False, None) == [] and betas_for("claude-opus-5-5", True, None) == []
    assert betas_for("claude-opus-5-5", True, ["x"]) == ["x"]
