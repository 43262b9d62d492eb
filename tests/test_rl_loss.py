"""GRPO as the rl stage configures TRL's trainer: group-relative advantages from our rewards, and the
clipped, KL-regularised loss, each against a group computed by hand on the tiny student."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from distill_lab.stages.rl.prompts import RLPrompt
from distill_lab.stages.rl.run import build_trainer, render_prompts, stop_ids
from distill_lab.students.loader import load_student
from tests.conftest import compose_config

BATCH: dict = {}


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("rl_loss")
    cfg = compose_config(["student=tiny", "hardware=cpu_fp32", "rl.group_size=4", "rl.prompts_per_step=1",
                          "rl.beta=0.1", "rl.clip_eps=0.2", "rl.reward.correct=1.0", "rl.reward.format=0.5",
                          "rl.max_completion_tokens=40", f"rl.dataset_dir={run_dir}"], stage="rl")
    model, tok = load_student(cfg.student, for_training=True)  # a fresh LoRA on the tiny base
    stops = stop_ids(tok, model)
    model.generation_config.eos_token_id = stops
    prompts = [RLPrompt("p0", "addition", "12", [{"role": "user", "content": "What is 5 + 7?"}])]
    t = build_trainer(cfg, model, tok, prompts, render_prompts(tok, prompts), stops, Path(run_dir) / "ck", False)
    return t, tok, prompts


def _ids(tok, text, eos=True):
    return tok(text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if eos else [])


def test_advantages_are_the_group_relative_rewards(trainer):
    t, tok, prompts = trainer
    group = [_ids(tok, "<think>\n5 + 7 = 12.\n</think>\n\nThe answer is 12."),  # right: 1 + 0.5
             _ids(tok, "<think>\n5 + 7 = 13.\n</think>\n\nThe answer is 13."),  # wrong, well formed: 0.5
             _ids(tok, "<think>\n5 + 7 = 12.\n</think>\n\nThe answer is 12.", eos=False),  # truncated: 0
             _ids(tok, "<think>\n5 + 7 = 12. The answer is 12.")]  # thinking never closed: 0
    t._generate_single_turn = lambda prompt_ids, *a, **k: (group, None)
    text = render_prompts(tok, prompts)[0]
    inputs = [{"prompt": text, "task": "addition", "reference": "12", "prompt_id": "p0"}] * 4
    out = t._generate_and_score_completions(inputs)
    r = [1.5, 0.5, 0.0, 0.0]
    mean = sum(r) / 4
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)  # sample std within the group
    want = [(x - mean) / (std + 1e-4) for x in r]
    assert out["advantages"].tolist() == pytest.approx(want, abs=1e-5)
    assert out["completion_mask"].sum(1).tolist() == [len(g) for g in group]
    BATCH.update(out)  # reused by the loss test below


def test_loss_is_grpo_clipped_ratio_plus_beta_kl(trainer):
    t, tok, _ = trainer
    if not BATCH:
        test_advantages_are_the_group_relative_rewards(trainer)
    batch = dict(BATCH)
    model = t.model
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    n = batch["completion_ids"].shape[1]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=att).logits[:, -n - 1:-1] / t.temperature
        logp = torch.log_softmax(logits.float(), -1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    g = torch.Generator().manual_seed(0)
    # an older policy a little off the current one, so the clip bites on some tokens, and a reference
    old = logp + 0.4 * torch.randn(logp.shape, generator=g)
    ref = logp + 0.3 * torch.randn(logp.shape, generator=g)
    batch["old_per_token_logps"], batch["ref_per_token_logps"] = old, ref
    A = batch["advantages"].unsqueeze(1)
    mask = batch["completion_mask"].float()
    ratio = torch.exp(logp - old)
    eps = 0.2
    surrogate = torch.minimum(ratio * A, torch.clamp(ratio, 1 - eps, 1 + eps) * A)
    kl = (torch.exp(ref - logp) - (ref - logp) - 1) * ratio  # k3, importance-weighted (off-policy correction)
    per_token = -surrogate + 0.1 * kl
    want = ((per_token * mask).sum(1) / mask.sum(1)).mean()
    clipped = ((ratio < 1 - eps) | (ratio > 1 + eps)) & (mask > 0)
    assert clipped.any() and not clipped.all()  # the hand group exercises both branches of the clip
    t.current_gradient_accumulation_steps = 1  # set by the training loop; one step here
    with torch.no_grad():
        got = t._compute_loss(model, batch)
    assert float(got) == pytest.approx(float(want), rel=1e-4, abs=1e-6)
