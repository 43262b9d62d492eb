"""Resume: kill -9 of the generating process at several points, then re-run: same ids, none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_lab.artifacts.rows import load_rows
from distill_lab.config import Config
from distill_lab.stages.generate.config import GenerateConfig, RecipeConfig
from distill_lab.stages.generate.run import run
from distill_lab.stages.generate.shards import Journal, read_rows
from tests.fake_api.anthropic_server import AnthropicFake, State
from tests.fake_api.harness import FAST, SECRET, gen_config

REPO = Path(__file__).resolve().parents[1]


def test_journal_cuts_a_partial_last_line(tmp_path):
    j = Journal(tmp_path / "shards", shard_rows=2)
    for i in range(3):
        j.append({"id": f"r{i}", "x": i})
    j.close()
    shards = j.shard_paths()
    assert [p.name for p in shards] == ["rows-00000.jsonl", "rows-00001.jsonl"]
    with open(shards[-1], "a") as f:
        f.write('{"id": "r3", "x"')  # what a kill -9 in the middle of a write leaves
    j2 = Journal(tmp_path / "shards")
    assert j2.repaired_bytes == len('{"id": "r3", "x"')
    assert [r["id"] for r in j2.rows()] == ["r0", "r1", "r2"]
    j2.append({"id": "r3", "x": 3})
    j2.close()
    assert [r["id"] for r in read_rows(tmp_path / "shards")] == ["r0", "r1", "r2", "r3"]
    assert len(j2.shard_paths()) == 3  # a new run never appends to an older shard


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_any_cut_leaves_the_complete_rows(tmp_path_factory, cut):
    """Wherever a kill cuts the last write, the journal keeps exactly the rows whose line is complete."""
    root = tmp_path_factory.mktemp("cut") / "shards"
    j = Journal(root, shard_rows=1000)
    for i in range(40):
        j.append({"id": f"r{i}", "text": "x" * (i * 7 % 50)})
    j.close()
    (shard,) = j.shard_paths()
    data = shard.read_bytes()
    cut = cut % (len(data) + 1)
    shard.write_bytes(data[:cut])
    complete = data[:cut].count(b"\n")
    j2 = Journal(root)
    assert [r["id"] for r in j2.rows()] == [f"r{i}" for i in range(complete)]
    j2.append({"id": "new", "text": ""})
    j2.close()
    assert [r["id"] for r in read_rows(root)][-1] == "new"


def test_failure_records_mask_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value-123")
    j = Journal(tmp_path / "shards")
    j.record_failure({"id": "x", "reason": "401: invalid key sk-ant-secret-value-123"})
    j.close()
    text = (tmp_path / "shards" / "failures.jsonl").read_text()
    assert "sk-ant-secret-value-123" not in text and "invalid key ***" in text


def test_one_writer_per_dataset(tmp_path):
    j = Journal(tmp_path / "shards")
    with pytest.raises(RuntimeError, match="another generate process"):
        Journal(tmp_path / "shards")
    j.close()
    Journal(tmp_path / "shards").close()  # free again


def test_oracle_rerun_sends_nothing_and_writes_nothing_twice(tmp_path):
    cfg = Config(stage="generate", recipe=RecipeConfig(size=12, test_size=3, ood_size=3),
                 generate=GenerateConfig(output_dir=str(tmp_path / "ds"), progress=False, samples_per_prompt=2))
    first = run(cfg, tmp_path)
    again = run(cfg, tmp_path)
    assert first.summary["requests"]["sent"] == 36 and again.summary["requests"]["sent"] == 0
    assert again.summary["requests"]["resumed_from_journal"] == 36
    rows = load_rows(tmp_path / "ds")
    assert len(rows) == 36 == len({r["id"] for r in rows})
    # the dataset lists rows in the recipe's order, whatever order the replies came in
    from distill_lab.stages.generate.recipe import build_problems

    pool = build_problems(cfg.recipe).problems
    want = [(p.prompt_id, k) for s in ("train", "test", "ood") for p in pool[s] for k in range(2)]
    assert [(r["prompt_id"], r["sample_index"]) for r in rows] == want
    # the oracle's two samples per prompt are identical: the second is a duplicate, moved to `rejected`
    # for train prompts, flagged in place for held-out ones
    assert first.summary["outcomes"] == {"kept": 18, "duplicate": 12, "heldout_duplicate": 6}
    assert len(load_rows(tmp_path / "ds", split="rejected")) == 12
    assert len(load_rows(tmp_path / "ds", split="test")) == 6


def _messages(srv) -> int:
    return sum(1 for r in srv.state.requests if r["path"] == "/v1/messages")


def _lines(ds: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in (ds / "shards").glob("rows-*.jsonl"))


@pytest.mark.slow
def test_kill_minus_9_then_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State(latency_s=0.05)).start()
    size = 160
    ds = tmp_path / "ds"
    args = [sys.executable, "-m", "distill_lab.cli", "generate", "teacher=anthropic", f"teacher.base_url={srv.url}",
            f"generate.output_dir={ds}", f"recipe.size={size}", "recipe.test_size=0", "recipe.ood_size=0",
            "generate.concurrency=4", f"hydra.run.dir={tmp_path}/hydra", *FAST]
    killed_at = []
    try:
        for target in (0, 30, 90):  # rows in the journal when the process is killed
            proc = subprocess.Popen(args, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            n0 = _messages(srv)
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                if _messages(srv) > n0 and (target == 0 or _lines(ds) >= target):
                    break
                time.sleep(0.01)
            assert proc.poll() is None, "the generator ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at.append(_lines(ds))
        assert killed_at[0] < killed_at[1] < killed_at[2] < size
        sent_before = _messages(srv)
        cfg = gen_config("anthropic", srv.url, ds, "generate.concurrency=4", size=size, test=0, ood=0)
        res = run(cfg, tmp_path)
        # only the missing rows were sent on resume
        assert _messages(srv) - sent_before == size - killed_at[-1] == res.summary["requests"]["sent"]
        resumed_ids = sorted(r["id"] for r in load_rows(ds))
        shard_ids = [r["id"] for r in read_rows(ds / "shards")]  # raises if an id was written twice
        assert len(shard_ids) == size == len(set(shard_ids))
        # an uninterrupted run of the same config
        clean = tmp_path / "clean"
        run(gen_config("anthropic", srv.url, clean, "generate.concurrency=4", size=size, test=0, ood=0), tmp_path)
        assert resumed_ids == sorted(r["id"] for r in load_rows(clean))
    finally:
        srv.stop()
