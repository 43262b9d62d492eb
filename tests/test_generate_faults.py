"""1,000 requests under injected faults: every row present exactly once, or recorded as failed with a reason."""

from __future__ import annotations

import json

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.stages.generate.run import run
from tests.fake_api.anthropic_server import AnthropicFake, Behaviour, State
from tests.fake_api.common import Faults
from tests.fake_api.harness import SECRET, gen_config


@pytest.mark.parametrize("stream", [pytest.param(True, marks=pytest.mark.slow), False])
def test_thousand_requests_under_faults(monkeypatch, tmp_path, stream):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    faults = Faults(rate_limit=0.05, overloaded=0.05, server_error=0.04, drop=0.04, malformed=0.04,
                    stream_error=0.03, stream_cut=0.03, retry_after_s=0.02, seed=7)
    srv = AnthropicFake(State(faults=faults, behaviour=Behaviour(invalid_every=97))).start()
    try:
        cfg = gen_config("anthropic", srv.url, tmp_path / "ds", f"teacher.stream={str(stream).lower()}",
                         "generate.concurrency=64", "teacher.max_retries=10", size=1000, test=0, ood=0)
        res = run(cfg, tmp_path)
    finally:
        srv.stop()
    served = srv.state.faults_served
    for kind in ("rate_limit", "overloaded", "server_error", "drop", "malformed"):
        assert served.get(kind, 0) >= 10, served  # each fault really happened, many times
    if stream:  # an error event mid-stream, and a connection cut mid-stream
        assert served.get("stream_error", 0) >= 10 and served.get("stream_cut", 0) >= 10
    rows = load_rows(tmp_path / "ds")
    fails = [json.loads(x) for x in (tmp_path / "ds" / "shards" / "failures.jsonl").read_text().splitlines()]
    row_ids = [r["id"] for r in rows]
    fail_ids = [f["id"] for f in fails]
    assert len(row_ids) == len(set(row_ids))  # no row twice
    assert len(fail_ids) == len(set(fail_ids))
    assert not set(row_ids) & set(fail_ids)
    assert len(row_ids) + len(fail_ids) == 1000  # every request accounted for
    for r in rows:  # the 97-multiples were refused: the rest succeeded in the end
        a, b = map(int, r["messages"][0]["content"][len("What is "):-1].split(" + "))
        assert (a + b) % 97 != 0 and r["messages"][-1]["content"] == f"The answer is {a + b}."
    assert len(fails) > 0
    for f in fails:
        assert f["status"] == 400 and "invalid_every" in f["reason"] and f["attempts"] == 1
    s = res.summary
    assert s["failed"] == len(fails) and s["per_split"]["train"] == len(rows)
    assert s["requests"]["retries"] == sum(served.values()) and s["requests"]["succeeded"] == len(rows)
