"""Batch mode against the local Message Batches endpoints: batch price, resubmission, resume without a 2nd batch."""

from __future__ import annotations

import json

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.stages.generate.run import run
from tests.fake_api.anthropic_server import AnthropicFake, State
from tests.fake_api.harness import SECRET, gen_config


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State(batch_delay_s=0.2)).start()
    yield srv
    srv.stop()


def _batch_creates(srv):
    return [r["body"] for r in srv.state.requests if r["path"] == "/v1/messages/batches"]


def test_batch_run_at_batch_price(fake, tmp_path):
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "teacher.batch=true", size=6, test=2, ood=2)
    res = run(cfg, tmp_path)
    (created,) = _batch_creates(fake)
    assert len(created["requests"]) == 10 and not [r for r in fake.state.requests if r["path"] == "/v1/messages"]
    p = created["requests"][0]["params"]
    assert p["thinking"] == {"type": "enabled", "budget_tokens": 16000} and "stream" not in p
    rows = load_rows(tmp_path / "ds")
    assert len(rows) == 10 and {r["id"] for r in rows} == {q["custom_id"] for q in created["requests"]}
    for r in rows:
        u = r["usage"]
        assert r["cost_usd"] == pytest.approx(0.5 * (u["input_tokens"] * 5 + u["output_tokens"] * 25) / 1e6)
        assert r["messages"][-1]["reasoning_content"].startswith("Step 1")
        assert r["request_id"].startswith("msgbatch_")
    assert res.summary["per_split"] == {"train": 6, "test": 2, "ood": 2}


def test_errored_and_expired_are_resubmitted(fake, tmp_path):
    fake.state.batch_fail_first = 0.5
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.batch=true", size=20, test=0, ood=0)
    run(cfg, tmp_path)
    creates = _batch_creates(fake)
    assert len(creates) >= 2
    first = {q["custom_id"] for q in creates[0]["requests"]}
    resent = {q["custom_id"] for c in creates[1:] for q in c["requests"]}
    assert resent and resent < first  # only the failed ones went again
    rows = load_rows(tmp_path / "ds")
    assert sorted(r["id"] for r in rows) == sorted(first)


def test_batch_resumes_after_crash_without_a_second_batch(fake, tmp_path, monkeypatch):
    """The process dies after the batch was created: the re-run polls that batch, creates none."""
    from anthropic.resources.messages.batches import AsyncBatches

    fake.state.batch_delay_s = 0.5

    async def crash(self, *a, **k):
        raise KeyboardInterrupt("simulated crash while polling")

    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.batch=true", size=5, test=0, ood=0)
    with monkeypatch.context() as m:
        m.setattr(AsyncBatches, "retrieve", crash)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, tmp_path)
    state = json.loads((tmp_path / "ds" / "shards" / "batches.json").read_text())["batches"]
    assert len(state) == 1 and state[0]["collected"] is False and len(_batch_creates(fake)) == 1
    res = run(cfg, tmp_path)
    assert len(_batch_creates(fake)) == 1  # resumed the same batch
    assert len(load_rows(tmp_path / "ds")) == 5 and res.summary["requests"]["succeeded"] == 5
    # a third run has nothing to do
    res3 = run(cfg, tmp_path)
    assert len(_batch_creates(fake)) == 1 and res3.summary["requests"]["resumed_from_journal"] == 5


def test_batch_spend_cap(fake, tmp_path):
    # worst case per request at the batch price: ~ 0.5 * 24000 * $25 / 1e6 = $0.30 -> 3 fit under $1
    cfg = gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.batch=true", "generate.max_cost_usd=1.0",
                     size=8, test=0, ood=0)
    res = run(cfg, tmp_path)
    (created,) = _batch_creates(fake)
    assert len(created["requests"]) == 3 and "max_cost_usd" in res.summary["stopped"]
    assert res.summary["cost_usd"] <= 1.0 and res.summary["requests"]["skipped"] == 5


def test_requests_are_split_within_the_batch_limits(fake, tmp_path, monkeypatch):
    from distill_lab.stages.generate import batch

    qs = [{"custom_id": f"r{i}", "params": {"x": "y" * i}} for i in range(10)]
    assert [len(c) for c in batch.chunks(qs, max_requests=4)] == [4, 4, 2]
    sizes = [len(c) for c in batch.chunks(qs, max_bytes=120)]
    assert sum(sizes) == 10 and len(sizes) > 1
    monkeypatch.setattr(batch, "MAX_REQUESTS", 3)
    monkeypatch.setattr(batch.chunks, "__defaults__", (3, batch.MAX_BYTES))
    run(gen_config("anthropic", fake.url, tmp_path / "ds", "teacher.batch=true", size=7, test=0, ood=0), tmp_path)
    assert [len(c["requests"]) for c in _batch_creates(fake)] == [3, 3, 1]
    assert len(load_rows(tmp_path / "ds")) == 7
