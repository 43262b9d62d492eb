"""What a run tells its log and manifest (issue 16 items 6, 7): progress lines without a terminal, retries with
their reasons, no line per HTTP request, short error texts, failure classes apart, a re-runnable command."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.stages.generate.run import run
from distill_lab.teachers.transport import short_text
from tests.fake_api.anthropic_server import AnthropicFake, State
from tests.fake_api.common import Faults
from tests.fake_api.harness import SECRET, gen_config


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State()).start()
    yield srv
    srv.stop()


def test_without_a_terminal_progress_is_logged_with_retry_reasons(fake, tmp_path, caplog):
    fake.state.faults = Faults(rate_limit=0.25, overloaded=0.1, retry_after_s=0.01, seed=5)
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "generate.progress=true",
                     "generate.progress_every_s=0", "generate.concurrency=2", size=20, test=0, ood=0)
    with caplog.at_level("INFO"):
        res = run(cfg, tmp_path)
    lines = [r.getMessage() for r in caplog.records if r.name == "distill_lab.stages.generate"]
    progress = [x for x in lines if re.match(r"generate: \d+/20 requests", x)]
    assert len(progress) >= 10, lines
    assert progress[-1].startswith("generate: 20/20 requests (100%): 20 rows, 0 failed")
    n429, n529 = fake.state.faults_served.get("rate_limit", 0), fake.state.faults_served.get("overloaded", 0)
    assert n429 and n529 and res.summary["requests"]["retries"] == n429 + n529
    assert f"'429': {n429}" in progress[-1] and f"'529': {n529}" in progress[-1]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("retrying after 429" in x for x in warnings) == 1  # the first of a kind is shown, the rest counted
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]  # no line per request


def test_an_html_error_page_becomes_one_short_line():
    import anthropic
    import httpx2

    from distill_lab.teachers.anthropic import classify_status_error

    page = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
            + "<p>upstream went away</p>" * 400 + "</body></html>")
    resp = httpx2.Response(502, text=page, request=httpx2.Request("POST", "http://x/v1/messages"))
    err = classify_status_error(anthropic.APIStatusError(f"Error code: 502 - {page}", response=resp, body=page))
    assert err.kind == "retryable" and "502 Bad Gateway" in str(err) and len(str(err)) < 200
    assert short_text("x" * 1000).endswith("... (1000 chars)")


@pytest.mark.parametrize("fault,label", [("drop", "dropped"), ("malformed", "malformed")])
def test_failure_reasons_tell_dropped_connections_from_malformed_replies(fake, tmp_path, fault, label):
    fake.state.faults = Faults(**{fault: 1.0})
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.max_retries=0", "teacher.stream=false",
                     size=4, test=0, ood=0)
    res = run(cfg, tmp_path)
    assert res.summary["failure_reasons"] == {label: 4}
    fails = [json.loads(x) for x in (tmp_path / "ds" / "shards" / "failures.jsonl").read_text().splitlines()]
    assert {f["reason"].split(":")[0] for f in fails} == {label}


@pytest.mark.slow  # a CLI subprocess of ~15 s on 2 cores (make test-slow runs it)
def test_the_manifest_command_re_runs(tmp_path):
    exe = Path(sys.executable).with_name("distill-lab")
    args = ["generate", "student=tiny", "recipe.size=3", "recipe.test_size=1", "recipe.ood_size=1",
            "teacher.system_prompt='Be brief, please.'", f"run_dir={tmp_path / 'run'}"]
    out = subprocess.run([str(exe), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    cmd = shlex.split(m["command"])
    assert cmd[:2] == ["distill-lab", "generate"] and "teacher.system_prompt='Be brief, please.'" in cmd
    assert not [a for a in cmd if a.startswith(("stage=", "hydra.job.name="))]
    again = subprocess.run([str(exe), *cmd[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ))
    assert again.returncode == 0, again.stderr[-2000:]
    m2 = json.loads((tmp_path / "run" / "manifest.json").read_text())
    launch_label = ("sweep_name",)  # the time of launch by default, like Hydra's own ${now:} folders
    same = {k: v for k, v in m["config"].items() if k not in launch_label}
    assert {k: v for k, v in m2["config"].items() if k not in launch_label} == same and m2["command"] == m["command"]
