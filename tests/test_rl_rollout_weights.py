"""Rollouts from the LoRA merged into the base (``stages/rl/rollout_weights.py``) on the tiny student:
the merged path generates the unmerged path's tokens, leaves every weight as it found it (bit for bit),
and a GRPO step through it trains the adapter as the unmerged path does; the choice is a config key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_lab.errors import ConfigError
from distill_lab.stages.rl import rollout_weights
from distill_lab.stages.rl.prompts import RLPrompt
from distill_lab.stages.rl.run import build_trainer, render_prompts, stop_ids
from distill_lab.students.loader import load_student
from tests.conftest import compose_config

PROMPTS = [RLPrompt("p0", "addition", "12", [{"role": "user", "content": "What is 5 + 7?"}]),
           RLPrompt("p1", "addition", "30", [{"role": "user", "content": "What is 17 + 13?"}])]


def _cfg(tmp, *extra):
    return compose_config(["student=tiny", "hardware=cpu_fp32", "rl.group_size=2", "rl.prompts_per_step=2",
                           "rl.max_completion_tokens=24", "rl.lr=1e-2", "rl.beta=0.1", f"rl.dataset_dir={tmp}",
                           "seed=3", *extra], stage="rl")


def _student(cfg):
    """The tiny student with a LoRA whose B is not zero (a fresh LoRA's is: merging it would change nothing)."""
    torch.manual_seed(0)
    model, tok = load_student(cfg.student, for_training=True)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    stops = stop_ids(tok, model)
    model.generation_config.eos_token_id = stops
    return model, tok, stops


def _trainer(tmp, *extra):
    cfg = _cfg(tmp, *extra)
    model, tok, stops = _student(cfg)
    t = build_trainer(cfg, model, tok, PROMPTS, render_prompts(tok, PROMPTS), stops, Path(tmp) / "ck", False)
    return t, tok


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_merged_rollouts_generate_the_unmerged_tokens_and_restore_every_weight(tmp_path):
    t, tok = _trainer(tmp_path)
    assert t.rollout_weights == "merged"
    t.generation_config.do_sample = False  # greedy: the same tokens unless the weights differ
    layers = rollout_weights._tuner_layers(t.model)
    merged_seen = []
    real_generate = t.model.generate

    def spy(*a, **k):
        merged_seen.append(all(layer.merged for layer in layers))
        return real_generate(*a, **k)

    t.model.generate = spy
    ids = [tok(x)["input_ids"] for x in render_prompts(tok, PROMPTS) for _ in range(2)]
    before = _state(t.model)
    merged, _ = t._generate_single_turn(ids, None, {}, 2)  # wrapped by rollout_weights.apply
    after = _state(t.model)
    unmerged, _ = type(t)._generate_single_turn(t, ids, None, {}, 2)  # TRL's own path, adapter unmerged
    assert merged_seen == [True, False]  # generate ran on merged weights only through the wrapper
    assert not any(layer.merged for layer in layers)  # unmerged again for the loss
    assert merged == unmerged and sum(map(len, merged)) > len(ids)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit for bit, not only within tolerance


def test_merge_changes_the_base_inside_the_block_and_restores_it_after_an_error(tmp_path):
    model, _, _ = _student(_cfg(tmp_path))
    before = _state(model)
    x = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        want = model(input_ids=x).logits
    with pytest.raises(RuntimeError, match="boom"), rollout_weights.merged_adapter(model):
        bases = {k: v for k, v in model.state_dict().items() if "base_layer.weight" in k}
        assert any(not torch.equal(bases[k], before[k]) for k in bases)  # the LoRA is in the base now
        with torch.no_grad():
            got = model(input_ids=x).logits
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)  # and no longer added on top
        raise RuntimeError("boom")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_grpo_step_through_merged_rollouts_trains_the_adapter_as_the_unmerged_path(tmp_path):
    """Same seed, same student, one optimiser step each way: the same sampled completions, so the same
    adapter update (within fp tolerance); the base weights are untouched by the merged run."""
    runs = {}
    for flag in ("true", "false"):
        t, _ = _trainer(tmp_path / flag, "rl.steps=1", f"rl.merge_for_rollouts={flag}")
        start = _state(t.model)
        t.train()
        runs[t.rollout_weights] = (start, _state(t.model))
    (s_m, e_m), (s_a, e_a) = runs["merged"], runs["adapter"]
    lora = [k for k in e_m if "lora_" in k and ".default." in k]
    assert lora and all(torch.equal(s_m[k], s_a[k]) for k in s_m)  # the two runs start from one student
    assert any(not torch.allclose(s_m[k], e_m[k]) for k in lora)  # the step moved the adapter
    for k in lora:
        torch.testing.assert_close(e_m[k], e_a[k], atol=1e-5, rtol=1e-4)
    for k in e_m:
        if "lora_" not in k:
            assert torch.equal(e_m[k], s_m[k]), k  # base (and frozen reference) exactly as before


def test_the_choice_is_one_per_run_and_qlora_merging_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    model, _, _ = _student(cfg)
    assert rollout_weights.choose(cfg, model) == "merged"
    assert rollout_weights.choose(_cfg(tmp_path, "rl.merge_for_rollouts=false"), model) == "adapter"
    assert rollout_weights.choose(cfg, model.get_base_model()) == "full"  # no adapter: nothing to merge
    q = _cfg(tmp_path)
    q.student.adapter = "qlora"
    with pytest.raises(ConfigError, match="rl.merge_for_rollouts"):
        rollout_weights.check(q)
    q.rl.merge_for_rollouts = False
    rollout_weights.check(q)  # the unmerged path is allowed
