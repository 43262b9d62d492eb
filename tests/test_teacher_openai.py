"""The openai_compat teacher against a local chat completions server, driven by the real openai SDK."""

from __future__ import annotations

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.errors import ConfigError
from distill_lab.stages.generate.run import GenerationStopped, run
from distill_lab.teachers.openai_compat import split_think
from tests.fake_api.common import Faults
from tests.fake_api.harness import gen_config
from tests.fake_api.openai_server import OpenAIFake, State

KEY = "sk-or-test-0123456789abcdef"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    srv = OpenAIFake(State()).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("style", ["reasoning_content", "reasoning", "think_tags"])
@pytest.mark.parametrize("effort,lines", [("low", 1), ("high", 6)])
def test_reasoning_lands_in_reasoning_content(fake, tmp_path, style, effort, lines):
    fake.state.reasoning_style = style
    cfg = gen_config("openai_compat", fake.url, tmp_path / "ds", f"teacher.effort={effort}", size=3, test=0, ood=0)
    res = run(cfg, tmp_path)
    for r in fake.state.requests:
        b = r["body"]
        assert b["reasoning_effort"] == effort and b["max_tokens"] == 16000 and b["temperature"] == 0.6
        assert r["auth"] == f"Bearer {KEY}"
    rows = load_rows(tmp_path / "ds", split="train")
    assert len(rows) == 3 and res.summary["outcomes"] == {"kept": 3}
    for r in rows:
        a, b = map(int, r["messages"][0]["content"][len("What is "):-1].split(" + "))
        asst = r["messages"][-1]
        assert asst["content"] == f"The answer is {a + b}."
        assert asst["reasoning_content"].count("Step ") == lines and "<think>" not in asst["reasoning_content"]
        assert r["verified"] is True and r["stop_reason"] == "end_turn" and r["request_id"].startswith("req_oa")
        assert r["usage"]["output_tokens"] > 0 and r["usage"]["thinking_tokens"] > 0


def test_unclosed_think_is_rejected(fake, tmp_path):
    fake.state.reasoning_style = "unclosed"
    res = run(gen_config("openai_compat", fake.url, tmp_path / "ds", size=2, test=0, ood=0), tmp_path)
    rej = load_rows(tmp_path / "ds", split="rejected")
    assert len(rej) == 2 and res.summary["outcomes"] == {"unclosed_thinking": 2}
    assert all(r["messages"][-1]["reasoning_content"].startswith("Step 1") for r in rej)


def test_split_think_shapes():
    assert split_think("<think>a\nb</think>\n\nThe answer is 3.") == ("a\nb", "The answer is 3.", False)
    assert split_think("a b</think>The answer is 3.") == ("a b", "The answer is 3.", False)  # template opened it
    assert split_think("The answer is 3.") == (None, "The answer is 3.", False)
    assert split_think("<think>still going") == ("still going", "", True)


def test_faults_are_retried(fake, tmp_path):
    fake.state.faults = Faults(rate_limit=0.15, overloaded=0.15, server_error=0.1, drop=0.1, malformed=0.1, seed=1)
    res = run(gen_config("openai_compat", fake.url, tmp_path / "ds", size=20, test=0, ood=0), tmp_path)
    assert len(load_rows(tmp_path / "ds", split="train")) == 20
    assert res.summary["requests"]["retries"] > 0 and res.summary["failed"] == 0


def test_quota_stops_the_run(fake, tmp_path):
    fake.state.quota_exhausted = True
    with pytest.raises(GenerationStopped, match="spend limit"):
        run(gen_config("openai_compat", fake.url, tmp_path / "ds", "generate.concurrency=1", size=5, test=0, ood=0),
            tmp_path)
    assert len(fake.state.requests) == 1


def test_missing_key_is_a_config_error(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        run(gen_config("openai_compat", fake.url, tmp_path / "ds", size=1, test=0, ood=0), tmp_path)
    assert fake.state.requests == []
    # a keyless local server: api_key_env=null
    run(gen_config("openai_compat", fake.url, tmp_path / "ds", "teacher.api_key_env=null", size=1, test=0, ood=0),
        tmp_path)
    assert fake.state.requests[0]["auth"] == "Bearer EMPTY"
