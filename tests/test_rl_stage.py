"""The rl stage on the tiny student: a few GRPO steps end to end in this process (adapter, log,
manifest), resume from its checkpoint, and the config errors that stop it before any model loads."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from distill_lab.errors import ConfigError
from distill_lab.stages.common import run_stage
from distill_lab.students.loader import load_student
from tests.conftest import compose_config
from tests.train_support import make_dataset

FAST = ["student=tiny", "hardware=cpu_fp32", "rl.group_size=2", "rl.prompts_per_step=2",
        "rl.max_completion_tokens=48", "rl.max_prompts=8", "rl.lr=1e-3", "rl.save_steps=1"]


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    """A dataset from the generate stage and a LoRA adapter in train's layout (saved untrained: the
    stage only needs its format; the train stage's own tests cover training it)."""
    root = tmp_path_factory.mktemp("rl")
    ds = make_dataset(root, size=16, effort="low")
    cfg = compose_config(["student=tiny"], stage="train")
    model, tok = load_student(cfg.student, for_training=True)
    model.save_pretrained(str(root / "adapter"))
    tok.save_pretrained(str(root / "adapter"))
    return ds, root / "adapter"


def rl(ds, adapter, run_dir, *overrides):
    cfg = compose_config([*FAST, f"rl.dataset_dir={ds}", f"rl.adapter_dir={adapter or 'null'}", f"run_dir={run_dir}",
                          *overrides], stage="rl")
    return run_stage("rl", cfg, run_dir)


def test_a_few_steps_end_to_end_then_a_rerun_resumes_from_the_last_checkpoint(sft, tmp_path, capfd, caplog):
    """One step, then the same command with rl.steps=2: it resumes from checkpoint-1 and runs step 2."""
    ds, adapter = sft
    rl(ds, adapter, tmp_path, "rl.steps=1", "logger.name=csv")
    with caplog.at_level(logging.INFO, logger="distill_lab.stages.rl"):
        res = rl(ds, adapter, tmp_path, "rl.steps=2", "logger.name=csv")
    # progress as the project's log lines (the resumed run counts from step 1), not transformers' printed dicts
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rl: 2/2 steps")]
    assert len(lines) == 1 and re.match(r"rl: 2/2 steps \(100%\): reward -?[\d.]+ \(correct [\d.]+\), KL [\d.]+, "
                                        r"\d+ tokens", lines[0]), lines
    assert "{'loss'" not in capfd.readouterr().out
    assert res.summary["resumed_from"] == str(tmp_path / "checkpoints" / "checkpoint-1")
    assert (res.summary["rollout_precision"], res.summary["rollout_precision_why"]) == (
        "fp32", "auto: hardware.precision=32-true")  # recorded, one choice per run (test_rl_rollout_precision.py)
    out = Path(res.artifacts["adapter"])
    assert json.loads((out / "distill_lab_adapter.json").read_text())["kind"] == "peft"
    before, after = load_file(str(adapter / "adapter_model.safetensors")), load_file(str(out / "adapter_model.safetensors"))
    assert set(before) == set(after)  # only the trained adapter, not TRL's frozen reference copy
    assert any(not (before[k] == after[k]).all() for k in before)  # GRPO moved it
    log = [json.loads(x) for x in (tmp_path / "rl_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for key in ("rl/reward_mean", "rl/reward_std", "rl/kl", "rl/completion_length", "rl/truncated_share",
                "rl/reward/addition/mean", "rl/reward/addition/std"):
        assert all(key in r for r in log), key
    assert log[0]["rl/kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the adapter it started from
    assert log[1]["rl/kl"] > 0  # after one update (resumed: the policy is the checkpoint's, not the start)
    assert all(0 <= r["rl/truncated_share"] <= 1 for r in log)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["stage"] == "rl" and m["artifacts"]["adapter"] == str(out)
    assert set(m["config"]) >= {"rl", "student"} and "train" not in m["config"]
    assert m["summary"]["steps"] == 2 and m["summary"]["rollout_tokens"] > 0
    assert m["summary"]["rollout_weights"] == "merged"  # rl.merge_for_rollouts=true (default), a peft student
    # the project's logger got the same per-step metrics (logger=wandb sends these calls to W&B)
    events = [json.loads(x) for x in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["kind"] == "metrics"]
    assert [e["step"] for e in steps] == [1, 2]  # step 1 from the first run, step 2 after resuming
    assert all({"rl/kl", "rl/truncated_share", "rl/reward/addition/std"} <= set(e["metrics"]) for e in steps)
    assert [e["type"] for e in events if e["kind"] == "artifact"] == ["model", "model"]
    model, _ = load_student(compose_config(["student=tiny"], stage="eval").student, adapter_dir=out)
    assert hasattr(model, "disable_adapter")  # eval loads it as a peft student


def test_a_budget_below_the_teachers_longest_answer_is_refused_unless_allowed(sft, tmp_path):
    ds, adapter = sft
    with pytest.raises(ConfigError, match=r"rl.max_completion_tokens: 8 is below the teacher's longest answer"):
        rl(ds, adapter, tmp_path / "a", "rl.max_completion_tokens=8")
    assert not (tmp_path / "a" / "checkpoints").exists()
    from distill_lab.stages.rl.run import check

    cfg = compose_config([*FAST, f"rl.dataset_dir={ds}", "rl.max_completion_tokens=8",
                          "rl.allow_short_completions=true"], stage="rl")
    assert check(cfg) > 8  # allowed: the check returns the teacher's longest answer instead


@pytest.mark.parametrize("overrides,field", [
    (["rl.group_size=1"], "rl.group_size"), (["rl.clip_eps=1.5"], "rl.clip_eps"), (["rl.beta=-1"], "rl.beta"),
    (["rl.reward.correct=0", "rl.reward.format=0"], "rl.reward"), (["rl.vllm=gpu"], "rl.vllm"),
    (["rl.split=nope"], "rl.split"), (["rl.max_completion_tokens=0"], "rl.max_completion_tokens"),
])
def test_bad_values_name_their_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        compose_config(overrides, stage="rl")


def test_missing_pointers_are_config_errors(sft, tmp_path):
    ds, _ = sft
    with pytest.raises(ConfigError, match="rl.dataset_dir: required"):
        run_stage("rl", compose_config(["student=tiny"], stage="rl"), tmp_path / "x")
    with pytest.raises(ConfigError, match="rl.adapter_dir"):
        rl(ds, tmp_path / "no-adapter", tmp_path / "y")
    with pytest.raises(ConfigError, match="rl.prompts_per_step: 4 prompts a step, but split 'train' .* has 2"):
        rl(ds, None, tmp_path / "z", "rl.max_prompts=2", "rl.prompts_per_step=4")


def test_the_cli_exits_2_on_a_bad_value_before_any_work(tmp_path):
    exe = Path(sys.executable).with_name("distill-lab")
    out = subprocess.run([str(exe), "rl", "student=tiny", "rl.group_size=1", f"run_dir={tmp_path / 'r'}"],
                         capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.returncode == 2
    assert "invalid config: rl.group_size: must be >= 2" in out.stderr
    assert not (tmp_path / "r").exists()


def test_the_pipeline_checks_the_rl_budget_before_training(tmp_path):
    cfg = compose_config(["debug=fast", "hardware=cpu_fp32", "rl.enabled=true", "rl.max_completion_tokens=8",
                          f"run_dir={tmp_path}"], stage="pipeline")
    with pytest.raises(ConfigError, match="rl.max_completion_tokens: 8 is below"):
        run_stage("pipeline", cfg, tmp_path)
    assert (tmp_path / "generate" / "dataset").is_dir() and not (tmp_path / "train").exists()
