"""Failure paths a user hits (issue 16 items 1, 2, 8): fatal API errors end the run within seconds, with
one line naming the cause and the fix, a non-zero exit, and nothing written that a re-run would trust."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill_lab.errors import ConfigError
from distill_lab.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_STOPPED, GenerationFailed
from distill_lab.stages.common import run_stage
from distill_lab.stages.generate.run import run
from tests.fake_api.anthropic_server import AnthropicFake, Behaviour, State
from tests.fake_api.harness import SECRET, gen_config


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State()).start()
    yield srv
    srv.stop()


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _messages(srv) -> int:
    return sum(1 for r in srv.state.requests if r["path"].endswith("/messages"))


def _nothing_written(ds: Path, run_dir: Path | None = None) -> None:
    assert not (ds / "rows.jsonl").exists() and not (ds / "hf").exists() and not (ds / "README.md").exists()
    if run_dir is not None:
        assert not (run_dir / "manifest.json").exists()


# ---------------------------------------------------------------- item 1: a base_url that refuses connections
def test_refused_base_url_fails_at_the_start_up_check(monkeypatch, tmp_path):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    cfg = gen_config("anthropic", f"http://127.0.0.1:{_closed_port()}", tmp_path / "ds", size=50, test=5, ood=5)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"^teacher\.base_url: nothing answers at http://127\.0\.0\.1:\d+.*fix "
                                          r"teacher\.base_url"):
        run_stage("generate", cfg, tmp_path / "run")
    assert time.monotonic() - t0 < 10
    _nothing_written(tmp_path / "ds", tmp_path / "run")


def test_refused_base_url_stops_the_engine_without_a_start_up_check(tmp_path):
    """openai_compat has no free start-up check: the engine stops after 3 refused connections, not 9 retries
    of every request with backoff up to a minute."""
    port = _closed_port()
    cfg = gen_config("openai_compat", f"http://127.0.0.1:{port}", tmp_path / "ds", "teacher.api_key_env=null",
                     "generate.retry_base_s=1", "generate.retry_cap_s=60", size=50, test=5, ood=5)
    t0 = time.monotonic()
    with pytest.raises(GenerationFailed, match=rf"nothing answers at POST http://127\.0\.0\.1:{port}/v1/chat/"
                                               r"completions.*teacher\.base_url"):
        run_stage("generate", cfg, tmp_path / "run")
    assert time.monotonic() - t0 < 10
    _nothing_written(tmp_path / "ds", tmp_path / "run")


# ---------------------------------------------------------------- item 2: fatal 401 / 404 on /v1/messages
def test_401_on_messages_stops_the_run(fake, tmp_path):
    """A proxy without the Models API: the start-up check cannot see the refused key; the first 401 stops."""
    fake.state.models_api = False
    fake.state.rejected_keys = {SECRET}
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", size=60, test=10, ood=10)
    t0 = time.monotonic()
    with pytest.raises(GenerationFailed, match="refused the key in ANTHROPIC_API_KEY.*set a valid key"):
        run_stage("generate", cfg, tmp_path / "run")
    assert time.monotonic() - t0 < 10
    assert _messages(fake) <= cfg.generate.concurrency  # the requests already in flight, no more
    _nothing_written(tmp_path / "ds", tmp_path / "run")


def test_v1_suffix_on_the_base_url_stops_the_run(fake, tmp_path):
    cfg = gen_config("anthropic", fake.url + "/v1", tmp_path / "ds", size=60, test=10, ood=10)
    with pytest.raises(GenerationFailed, match=r"/v1/v1/messages answered 404.*must not end in /v1"):
        run_stage("generate", cfg, tmp_path / "run")
    assert _messages(fake) <= cfg.generate.concurrency
    _nothing_written(tmp_path / "ds", tmp_path / "run")


def test_unknown_model_is_a_config_error_when_the_models_api_lists_models(fake, tmp_path):
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.model=claude-opus-4-55", size=5, test=0, ood=0)
    with pytest.raises(ConfigError, match=r"^teacher\.model: .*does not serve 'claude-opus-4-55'.*claude-opus-4-5'"):
        run(cfg, tmp_path)
    assert _messages(fake) == 0
    assert [r["path"] for r in fake.state.requests] == ["/v1/models/claude-opus-4-55", "/v1/models"]


def test_unknown_model_without_a_models_api_stops_at_the_first_404(fake, tmp_path):
    fake.state.models_api = False
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.model=claude-opus-4-55", "teacher.betas=[]",
                     size=60, test=0, ood=0)
    with pytest.raises(GenerationFailed, match=r"answered 404 .*teacher\.model='claude-opus-4-55'"):
        run(cfg, tmp_path)
    assert 1 <= _messages(fake) <= cfg.generate.concurrency
    _nothing_written(tmp_path / "ds")


def test_a_fatal_stop_keeps_the_rows_already_bought_for_a_re_run(fake, tmp_path):
    """Rows received before the fatal error stay in the journal (paid for); a re-run resumes from them."""
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "generate.concurrency=1", size=8, test=0, ood=0)
    fake.state.spend_limit_after = None
    res = run(cfg, tmp_path)
    assert res.summary["rows"] == 8
    cfg2 = gen_config("anthropic", fake.url, tmp_path / "ds", "generate.concurrency=1", size=12, test=0, ood=0)
    fake.state.rejected_keys = {SECRET}
    fake.state.models_api = False
    with pytest.raises(GenerationFailed):
        run(cfg2, tmp_path)
    fake.state.rejected_keys = set()
    n0 = _messages(fake)
    res = run(cfg2, tmp_path)
    assert res.summary["requests"]["resumed_from_journal"] == 8 and _messages(fake) - n0 == 4


# ---------------------------------------------------------------- item 8: exit codes from the CLI
def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("distill-lab")
    env = {**os.environ, "ANTHROPIC_API_KEY": SECRET}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("distill-lab generate:")]
    assert len(lines) == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return lines[0]


def test_cli_fatal_404_exits_3_with_one_line(fake, tmp_path):
    run_dir = tmp_path / "run"
    out = _cli(["generate", "teacher=anthropic", f"teacher.base_url={fake.url}/v1", "student=tiny",
                "recipe.size=40", "generate.progress=false", f"run_dir={run_dir}"], tmp_path)
    assert out.returncode == EXIT_FAILED, out.stderr[-3000:]
    line = _one_line(out.stderr)
    assert "GenerationFailed" in line and "404" in line and "must not end in /v1" in line
    assert not (run_dir / "manifest.json").exists() and not list(tmp_path.rglob("rows.jsonl"))


@pytest.mark.slow  # CLI subprocesses of ~10-20 s on 2 cores (make test-slow runs it)
def test_cli_unresolved_failures_exit_3_and_a_cap_exits_4(fake, tmp_path):
    fake.state.behaviour = Behaviour(invalid_every=3)
    base = ["generate", "teacher=anthropic", f"teacher.base_url={fake.url}", "student=tiny", "recipe.size=12",
            "recipe.test_size=0", "recipe.ood_size=0", "generate.progress=false", "generate.concurrency=1"]
    out = _cli([*base, f"run_dir={tmp_path / 'a'}"], tmp_path)
    assert out.returncode == EXIT_FAILED, out.stderr[-3000:]
    line = _one_line(out.stderr)
    assert "requests failed" in line and "re-run the same command" in line
    assert (tmp_path / "a" / "manifest.json").exists()  # the rows it did get are a valid dataset
    fake.state.behaviour = Behaviour(max_tokens_every=1)  # every reply bills all 24000 output tokens: $0.60
    out = _cli([*base, "generate.max_cost_usd=1.3", f"run_dir={tmp_path / 'b'}"], tmp_path)
    assert out.returncode == EXIT_STOPPED, out.stderr[-3000:]
    assert "max_cost_usd" in _one_line(out.stderr)


@pytest.mark.parametrize("override", ["teacher.effort=hgih", "optimizer.lr=-1", "recipe.sise=3"])
def test_cli_config_errors_all_exit_2(tmp_path, override):
    """An unknown value (Hydra's composition error) and an out-of-range one (our check) exit alike."""
    out = _cli(["generate", "student=tiny", override, f"run_dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode == EXIT_CONFIG, (out.returncode, out.stderr[-2000:])
    assert override.split("=")[0] in _one_line(out.stderr)  # one line, no traceback
    assert not (tmp_path / "run").exists()
