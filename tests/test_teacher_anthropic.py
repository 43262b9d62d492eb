"""The anthropic teacher against a local server speaking the Messages API, driven by the real SDK."""

from __future__ import annotations

import json

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.errors import ConfigError
from distill_lab.exit_codes import GenerationFailed
from distill_lab.stages.generate.run import GenerationStopped, run
from tests.fake_api.anthropic_server import AnthropicFake, Behaviour, State
from tests.fake_api.common import Faults
from tests.fake_api.harness import SECRET, gen_config


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State()).start()
    yield srv
    srv.stop()


def _bodies(srv, path="/v1/messages"):
    return [r["body"] for r in srv.state.requests if r["path"] == path]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("effort,budget", [("low", 2048), ("medium", 8192), ("high", 16000)])
def test_enabled_thinking_per_effort(fake, tmp_path, effort, budget, stream):
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", f"teacher.effort={effort}",
                     f"teacher.stream={str(stream).lower()}", size=3, test=0, ood=0)
    res = run(cfg, tmp_path)
    bodies = _bodies(fake)
    assert len(bodies) == 3
    for b in bodies:
        assert b["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert b["output_config"] == {"effort": effort}
        assert b["max_tokens"] == 24000 and b["model"] == "claude-opus-4-5"
        assert bool(b.get("stream")) is stream
        assert "temperature" not in b  # thinking needs the default temperature
    assert {r["api_key"] for r in fake.state.requests} == {SECRET}
    # output_config.effort on Opus 4.5 is a beta: its header goes with every message request
    assert {r["anthropic_beta"] for r in fake.state.requests if r["path"] == "/v1/messages"} == {"effort-2025-11-24"}
    rows = load_rows(tmp_path / "ds", split="train")
    assert len(rows) == 3 and res.summary["per_split"] == {"train": 3}
    lines = budget // 2048  # the fake thinks one line per 2048 budget tokens
    for r in rows:
        a, b = map(int, r["messages"][0]["content"][len("What is "):-1].split(" + "))
        asst = r["messages"][-1]
        assert asst["content"] == f"The answer is {a + b}."
        assert asst["reasoning_content"].count("Step ") == lines and f"the sum is {a + b}" in asst["reasoning_content"]
        assert "The answer is" not in asst["reasoning_content"]
        assert r["verified"] is True and r["stop_reason"] == "end_turn"
        assert r["request_id"].startswith("req_fake")
        assert r["usage"]["thinking_tokens"] > 0 and r["usage"]["output_tokens"] > r["usage"]["thinking_tokens"]
        assert r["thinking_chars"] == len(asst["reasoning_content"])
        assert r["teacher"]["budget_tokens"] == budget and r["teacher"]["effort"] == effort
        # cost from the price table: $5/M input, $25/M output
        u = r["usage"]
        assert r["cost_usd"] == pytest.approx((u["input_tokens"] * 5 + u["output_tokens"] * 25) / 1e6)


@pytest.mark.parametrize("effort", ["low", "xhigh", "max"])
def test_adaptive_thinking_sends_effort_and_display(fake, tmp_path, effort):
    cfg = gen_config("anthropic_adaptive", fake.url, tmp_path / "ds", f"teacher.effort={effort}", size=2, test=0,
                     ood=0)
    run(cfg, tmp_path)
    for b in _bodies(fake):
        assert b["thinking"] == {"type": "adaptive", "display": "summarized"}
        assert b["output_config"] == {"effort": effort}
        assert b["model"] == "claude-opus-4-7"
    rows = load_rows(tmp_path / "ds", split="train")
    assert [r["messages"][-1]["reasoning_content"].count("Step ") for r in rows] == [
        {"low": 1, "xhigh": 8, "max": 10}[effort]] * 2
    assert all(r["teacher"]["budget_tokens"] is None for r in rows)


def test_omitted_thinking_is_rejected_not_dropped(fake, tmp_path):
    """Without display: summarized this model returns empty thinking: the rows land in `rejected`."""
    cfg = gen_config("anthropic_adaptive", fake.url, tmp_path / "ds", "teacher.thinking_display=null", size=3,
                     test=0, ood=0)
    res = run(cfg, tmp_path)
    assert "display" not in _bodies(fake)[0]["thinking"]
    rej = load_rows(tmp_path / "ds", split="rejected")
    assert len(rej) == 3 and {r["reject_reason"] for r in rej} == {"empty_thinking"}
    assert all(r["usage"]["thinking_tokens"] > 0 and r["thinking_chars"] == 0 for r in rej)  # billed, not shown
    assert res.summary["outcomes"] == {"empty_thinking": 3}


def test_sonnet_adaptive(fake, tmp_path):
    run(gen_config("anthropic_sonnet", fake.url, tmp_path / "ds", "teacher.effort=low", size=1, test=0, ood=0),
        tmp_path)
    (b,) = _bodies(fake)
    assert b["thinking"] == {"type": "adaptive", "display": "summarized"} and b["output_config"] == {"effort": "low"}
    assert b["model"] == "claude-sonnet-4-6"


@pytest.mark.parametrize("overrides,field", [
    (["teacher.thinking_mode=enabled"], "teacher.thinking_mode"),
    (["teacher.effort=xhigh"], "teacher.effort"),
    (["teacher.max_tokens=70000"], "teacher.max_tokens"),
])
def test_model_capabilities_are_checked_before_any_message(fake, tmp_path, monkeypatch, overrides, field):
    """A model outside the model table is checked against what the Models API reports, before any message."""
    from tests.fake_api import anthropic_server

    monkeypatch.setitem(anthropic_server.MODELS, "claude-lab-test", (("adaptive",), ("low", "medium", "high"), "active"))
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.model=claude-lab-test", "teacher.betas=[]",
                     *overrides, size=2, test=0, ood=0)
    with pytest.raises(ConfigError, match=field):
        run(cfg, tmp_path)
    assert [r["path"] for r in fake.state.requests] == ["/v1/models/claude-lab-test"]


def test_filters_and_redacted_thinking(fake, tmp_path):
    fake.state.behaviour = Behaviour(max_tokens_every=5, wrong_every=7, redacted_every=3)
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", size=40, test=0, ood=0)
    res = run(cfg, tmp_path)
    rows = load_rows(tmp_path / "ds")
    assert len(rows) == 40
    for r in rows:
        a, b = map(int, r["messages"][0]["content"][len("What is "):-1].split(" + "))
        s = a + b
        want = "max_tokens" if s % 5 == 0 else "unverified" if s % 7 == 0 else None
        assert r["reject_reason"] == want, (s, r["reject_reason"])
        assert r["split"] == ("rejected" if want else "train") and r["origin_split"] == "train"
        assert r["redacted_thinking"] == (1 if s % 3 == 0 else 0)
    n_rej = sum(1 for r in rows if r["reject_reason"])
    assert 0 < n_rej < 40
    assert res.summary["outcomes"]["kept"] == 40 - n_rej
    assert res.summary["redacted_thinking_rows"] == sum(1 for r in rows if r["redacted_thinking"])


def test_system_prompt_is_cached_and_cache_tokens_cost(fake, tmp_path):
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "teacher.system_prompt='You add numbers carefully.'",
                     "generate.concurrency=1", size=3, test=0, ood=0)
    run(cfg, tmp_path)
    for b in _bodies(fake):
        assert b["system"] == [{"type": "text", "text": "You add numbers carefully.",
                                "cache_control": {"type": "ephemeral"}}]
    rows = sorted(load_rows(tmp_path / "ds"), key=lambda r: r["created_at"])
    writes = [r["usage"]["cache_creation_input_tokens"] for r in rows]
    reads = [r["usage"]["cache_read_input_tokens"] for r in rows]
    assert sorted(writes, reverse=True)[0] > 0 and sum(1 for w in writes if w) == 1
    assert sum(1 for x in reads if x) == 2
    for r in rows:
        u = r["usage"]
        assert r["cost_usd"] == pytest.approx((u["input_tokens"] * 5 + u["output_tokens"] * 25
                                               + u["cache_creation_input_tokens"] * 6.25
                                               + u["cache_read_input_tokens"] * 0.5) / 1e6)


def test_long_non_streamed_requests_warn(fake, tmp_path, caplog):
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.stream=false", "teacher.max_tokens=32000",
                     size=1, test=0, ood=0)
    with caplog.at_level("WARNING", logger="distill_lab.teachers.anthropic"):
        run(cfg, tmp_path)
    assert "teacher.stream=true is safer" in caplog.text
    assert len(load_rows(tmp_path / "ds")) == 1


def test_missing_key_fails_before_any_request(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", size=2, test=0, ood=0)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        run(cfg, tmp_path)
    assert fake.state.requests == [] and not (tmp_path / "ds").exists()


def test_bad_request_is_not_retried(fake, tmp_path):
    """A 400 for some prompts is final for those prompts only: the others are bought, the run says so."""
    fake.state.behaviour = Behaviour(invalid_every=4)
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", size=12, test=0, ood=0)
    res = run(cfg, tmp_path)
    n_bad = res.summary["failed"]
    assert 0 < n_bad < 12 and res.summary["failure_reasons"] == {"400": n_bad}
    assert len(_bodies(fake)) == 12  # one request each, no retries
    assert len(load_rows(tmp_path / "ds")) == 12 - n_bad
    assert res.incomplete is not None and res.incomplete[0] == 3 and "re-run the same command" in res.incomplete[1]
    fails = [json.loads(x) for x in (tmp_path / "ds" / "shards" / "failures.jsonl").read_text().splitlines()]
    assert len(fails) == n_bad and all("not retryable" in f["reason"] for f in fails)


def test_the_same_400_for_every_request_stops_the_run(fake, tmp_path):
    """The API refusing a setting for every request: 3 requests, then the run stops; no dataset is written."""
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "generate.concurrency=1", size=40, test=0, ood=0)
    cfg.teacher.max_tokens = 4000  # bypass the config check to make the server refuse (budget >= max_tokens)
    with pytest.raises(GenerationFailed, match="refused the first 3 requests.*max_tokens"):
        run(cfg, tmp_path)
    assert len(_bodies(fake)) == 3
    assert not (tmp_path / "ds" / "rows.jsonl").exists() and not (tmp_path / "ds" / "hf").exists()


def test_refused_key_stops_before_any_message(fake, tmp_path):
    fake.state.rejected_keys = {SECRET}
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", size=3, test=0, ood=0)
    with pytest.raises(ConfigError, match="refused the key in ANTHROPIC_API_KEY"):
        run(cfg, tmp_path)
    assert [r["path"] for r in fake.state.requests] == ["/v1/models/claude-opus-5-5"]
    assert SECRET not in str(fake.state.requests[0]["path"])


def test_error_classes():
    import anthropic
    import httpx2

    from distill_lab.teachers.anthropic import classify_status_error

    def err(status, etype, headers=None, details=None):
        e = {"type": etype, "message": "m"}
        if details:
            e["details"] = details
        body = {"type": "error", "error": e}
        resp = httpx2.Response(status, headers=headers or {}, json=body,
                               request=httpx2.Request("POST", "http://x/v1/messages"))
        return classify_status_error(anthropic.APIStatusError("m", response=resp, body=body))

    assert [err(s, t).kind for s, t in [(400, "invalid_request_error"), (401, "authentication_error"),
                                         (403, "permission_error"), (404, "not_found_error")]] == ["fatal"] * 4
    assert [err(s, t).kind for s, t in [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error"),
                                         (503, "api_error"), (200, "overloaded_error")]] == ["retryable"] * 5
    assert err(429, "rate_limit_error", {"retry-after": "7"}).retry_after == 7.0
    assert err(429, "rate_limit_error", details={"error_code": "enforced_spend_limit_reached"}).kind == "spend_limit"
    assert err(200, "invalid_request_error").kind == "fatal"


def test_retries_honour_retry_after(fake, tmp_path):
    fake.state.faults = Faults(rate_limit=0.5, retry_after_s=0.3, seed=3)
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "generate.concurrency=1", size=4, test=0, ood=0)
    res = run(cfg, tmp_path)
    n429 = fake.state.faults_served.get("rate_limit", 0)
    assert n429 >= 1 and res.summary["requests"]["retries"] == n429
    assert res.summary["wall_s"] >= 0.3 * n429  # every 429 waited at least its retry-after
    assert len(load_rows(tmp_path / "ds", split="train")) == 4


def test_spend_limit_stops_the_run(fake, tmp_path):
    fake.state.spend_limit_after = 3
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "generate.concurrency=1", size=10, test=0, ood=0)
    with pytest.raises(GenerationStopped, match="spend limit"):
        run(cfg, tmp_path)
    assert len(_bodies(fake)) == 4  # 3 rows, then one refused request, then nothing more
    assert len(load_rows(tmp_path / "ds")) == 3


def test_spend_cap_holds(fake, tmp_path):
    """max_cost_usd: the run stops before crossing the cap; a re-run with a higher cap resumes."""
    fake.state.behaviour = Behaviour(max_tokens_every=1)  # every reply bills all 24000 output tokens: $0.60
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "generate.max_cost_usd=2.0", "generate.concurrency=4",
                     size=10, test=0, ood=0)
    res = run(cfg, tmp_path)
    rows = load_rows(tmp_path / "ds")
    # worst case per request is $0.60 + input: three fit under $2.00, a fourth could cross it
    assert len(rows) == 3 and len(_bodies(fake)) == 3
    assert res.summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert 1.8 < res.summary["cost_usd"] <= 2.0 and "max_cost_usd" in res.summary["stopped"]
    assert res.summary["requests"]["skipped"] == 10 - len(rows)
    cfg.generate.max_cost_usd = None
    res2 = run(cfg, tmp_path)
    assert len(load_rows(tmp_path / "ds")) == 10 and len(_bodies(fake)) == 10
    assert res2.summary["requests"]["resumed_from_journal"] == len(rows)


def test_api_key_never_written(fake, tmp_path):
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", size=3, test=1, ood=1)
    from distill_lab.stages.common import run_stage

    run_stage("generate", cfg, tmp_path / "run")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files) and any(p.name == "rows.jsonl" for p in files)
    for p in files:
        assert SECRET.encode() not in p.read_bytes(), p
    assert {r["api_key"] for r in fake.state.requests} == {SECRET}  # it was sent, only to the server


def test_timeouts_are_retried_then_recorded(fake, tmp_path):
    fake.state.latency_s = 1.0
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.timeout_s=0.2", "teacher.max_retries=1",
                     size=2, test=0, ood=0)
    res = run(cfg, tmp_path)
    assert len(_bodies(fake)) == 4  # each request tried twice
    assert res.summary["failed"] == 2 and res.summary["requests"]["retries"] == 2
    fails = [json.loads(x) for x in (tmp_path / "ds" / "shards" / "failures.jsonl").read_text().splitlines()]
    assert all("Timeout" in f["reason"] and "retries exhausted after 2" in f["reason"] for f in fails)


def test_few_shot_turns_are_cached():
    import os

    from distill_lab.tasks.base import Problem
    from distill_lab.teachers.anthropic import AnthropicTeacher
    from distill_lab.teachers.config import TeacherConfig

    class FewShot(Problem):
        def messages(self):
            return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1 + 1?"},
                    {"role": "assistant", "content": "The answer is 2."}, {"role": "user", "content": self.prompt}]

    os.environ.setdefault("ANTHROPIC_API_KEY", SECRET)
    t = AnthropicTeacher(TeacherConfig(provider="anthropic", max_tokens=9000, base_url="http://127.0.0.1:9"))
    p = t.request_params(FewShot(prompt_id="p", task="addition", category="reasoning", split="train",
                                 prompt="What is 2 + 2?", reference="4"))
    assert p["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert p["messages"][1] == {"role": "assistant", "content": [
        {"type": "text", "text": "The answer is 2.", "cache_control": {"type": "ephemeral"}}]}
    assert p["messages"][0] == {"role": "user", "content": "What is 1 + 1?"}
    assert p["messages"][2] == {"role": "user", "content": "What is 2 + 2?"}
