"""The spend cap (issue 16 items 3, 4): every split represented when the cap stops a run, a cap too small for
one row of each split refused up front naming the minimum, and a dataset folder's earlier spend counted."""

from __future__ import annotations

import re

import pytest

from distill_lab.errors import ConfigError
from distill_lab.exit_codes import EXIT_STOPPED
from distill_lab.stages.generate.budget import interleave_splits
from distill_lab.stages.generate.run import run
from tests.fake_api.anthropic_server import AnthropicFake, Behaviour, State
from tests.fake_api.harness import SECRET, gen_config, rows_by_split


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    srv = AnthropicFake(State()).start()
    yield srv
    srv.stop()


def _messages(srv) -> int:
    return sum(1 for r in srv.state.requests if r["path"] == "/v1/messages")


def test_interleave_keeps_every_prefix_in_proportion():
    items = [("train", i) for i in range(60)] + [("test", i) for i in range(20)] + [("ood", i) for i in range(20)]
    order = interleave_splits(items, lambda x: x[0])
    assert sorted(order) == sorted(items)
    for s in ("train", "test", "ood"):  # stable within a split
        assert [i for sp, i in order if sp == s] == sorted(i for sp, i in order if sp == s)
    for k in (5, 10, 37, 100):
        n = sum(1 for sp, _ in order[:k] if sp == "train")
        assert abs(n - 0.6 * k) <= 1.5, (k, n)


def test_a_cap_below_one_row_of_each_split_is_refused_up_front(fake, tmp_path):
    # worst case of a request: 24000 output tokens at $25/M = $0.60 plus its input
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "generate.max_cost_usd=1.0",
                     size=6, test=2, ood=2)
    with pytest.raises(ConfigError) as e:
        run(cfg, tmp_path)
    msg = str(e.value)
    assert msg.startswith("generate.max_cost_usd: $1 cannot buy one row of each split ['ood', 'test', 'train']")
    need = float(re.search(r"set generate\.max_cost_usd >= ([0-9.]+)", msg).group(1))
    assert 2.4 < need < 2.5  # four worst cases: train's first two come before test's and ood's first
    assert fake.state.requests == [] and not (tmp_path / "ds").exists()
    cfg.generate.max_cost_usd = need  # the named minimum is enough
    res = run(cfg, tmp_path)
    assert set(res.summary["per_split"]) >= {"train", "test", "ood"}


def test_a_capped_run_keeps_every_split_in_proportion(fake, tmp_path, caplog):
    fake.state.behaviour = Behaviour(max_tokens_every=1)  # every reply bills its worst case: $0.60
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "generate.max_cost_usd=6.1",
                     "generate.concurrency=4", size=30, test=10, ood=10)
    with caplog.at_level("WARNING", logger="distill_lab.stages.generate.budget"):
        res = run(cfg, tmp_path)
    assert "fewer than generate.concurrency=4" not in caplog.text  # 10 worst cases fit: no warning
    got = {s: len(v) for s, v in rows_by_split(tmp_path / "ds").items()}
    got["train"] = got.get("train", 0) + got.pop("rejected", 0)  # max_tokens rows are rejected from train
    assert sum(got.values()) == 10 == _messages(fake)
    assert got["train"] in (5, 6, 7) and got["test"] >= 1 and got["ood"] >= 1, got
    assert res.incomplete is not None and res.incomplete[0] == EXIT_STOPPED
    assert "40 missing" in res.incomplete[1] and res.summary["cost_usd"] <= 6.1


def test_a_cap_that_limits_concurrency_says_so(fake, tmp_path, caplog):
    cfg = gen_config("anthropic_opus45", fake.url, tmp_path / "ds", "generate.max_cost_usd=3.0",
                     "generate.concurrency=16", size=4, test=0, ood=0)
    with caplog.at_level("WARNING", logger="distill_lab.stages.generate.budget"):
        run(cfg, tmp_path)
    assert "holds 4 worst-case requests" in caplog.text and "fewer than generate.concurrency=16" in caplog.text


def test_a_changed_teacher_setting_in_the_same_folder_is_refused(fake, tmp_path):
    ds = tmp_path / "ds"
    run(gen_config("anthropic_opus45", fake.url, ds, "teacher.effort=low", size=4, test=0, ood=0), tmp_path)
    n = _messages(fake)
    with pytest.raises(ConfigError, match=r"^generate\.output_dir: .* already holds 4 rows of these prompts .*"
                                          r"teacher\.effort: 'low' -> 'high'.*mix_teacher_settings=true"):
        run(gen_config("anthropic_opus45", fake.url, ds, "teacher.effort=high", size=4, test=0, ood=0), tmp_path)
    assert _messages(fake) == n
    res = run(gen_config("anthropic_opus45", fake.url, ds, "teacher.effort=high", "generate.mix_teacher_settings=true",
                         size=4, test=0, ood=0), tmp_path)
    assert _messages(fake) == n + 4 and res.summary["rows"] == 4


def test_the_cap_counts_what_the_folder_already_spent(fake, tmp_path):
    fake.state.behaviour = Behaviour(max_tokens_every=1)  # $0.60 a row
    ds = tmp_path / "ds"
    run(gen_config("anthropic_opus45", fake.url, ds, "teacher.effort=low", size=4, test=0, ood=0), tmp_path)
    n = _messages(fake)  # $2.40 spent in this folder
    cfg = gen_config("anthropic_opus45", fake.url, ds, "teacher.effort=high", "generate.mix_teacher_settings=true",
                     "generate.max_cost_usd=3.0", size=4, test=0, ood=0)
    with pytest.raises(ConfigError, match=r"already spent on this dataset folder"):
        run(cfg, tmp_path)
    assert _messages(fake) == n
    cfg.generate.max_cost_usd = 4.3  # $2.40 spent + three more worst cases
    res = run(cfg, tmp_path)
    assert _messages(fake) - n == 3 and res.incomplete[0] == EXIT_STOPPED
