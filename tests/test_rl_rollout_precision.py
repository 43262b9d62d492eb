"""bf16 rollouts (``stages/rl/rollout_precision.py``) on the tiny student: the bf16 path really generates
in bf16 from a copy holding the merged LoRA, refreshed after a step, while the policy stays fp32 and
untouched; the fp32 path generates on the policy's own weights; the choice per machine is a pure
function, recorded, and a CPU without native bf16 is an explicit fp32 choice (or a config error when
bf16 is asked for)."""

from __future__ import annotations

import pytest
import torch

from distill_lab.backends import precision as prec
from distill_lab.errors import ConfigError
from distill_lab.stages.rl import rollout_precision as rp
from distill_lab.stages.rl.run import build_trainer, render_prompts
from tests.test_rl_rollout_weights import PROMPTS, _cfg, _state, _student

AMX = frozenset({"avx512f", "avx512_bf16", "amx_bf16"})
AVX2 = frozenset({"avx2", "fma"})


@pytest.fixture
def native(monkeypatch):
    """This CPU has native bf16 as far as the stage can tell (whatever the test machine is)."""
    monkeypatch.setattr(prec, "cpu_flags", lambda: AMX)
    monkeypatch.setattr(prec, "onednn_isa_cap", lambda: None)


def _trainer(tmp, *extra):
    cfg = _cfg(tmp, *extra)
    model, tok, stops = _student(cfg)
    t = build_trainer(cfg, model, tok, PROMPTS, render_prompts(tok, PROMPTS), stops, tmp / "ck", False)
    ids = [tok(x)["input_ids"] for x in render_prompts(tok, PROMPTS) for _ in range(2)]
    return t, tok, stops, ids


def _logit_dtypes(model):
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


def _merged_q(policy):
    """The first layer's q_proj weight with the LoRA merged in (fp32), computed by hand: W + s * B A."""
    q = policy.get_base_model().model.layers[0].self_attn.q_proj
    return q.base_layer.weight + q.scaling["default"] * q.lora_B["default"].weight @ q.lora_A["default"].weight


def test_bf16_rollouts_run_on_a_bf16_copy_of_the_merged_weights_refreshed_after_a_step(tmp_path, native):
    t, tok, stops, ids = _trainer(tmp_path, "hardware=cpu", "rl.rollout_precision=bf16")
    assert (t.rollout_precision, t.rollout_weights) == ("bf16", "merged")
    copy = t.rollout_copy.model
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in t.model.parameters()} == {torch.float32}  # the policy is not cast
    rollout_logits, policy_logits = _logit_dtypes(copy), _logit_dtypes(t.model)
    contiguous = []  # what the head gets after the copy's own pre-hook (the prefill's last-position slice)
    copy.get_output_embeddings().register_forward_pre_hook(lambda m, a: contiguous.append(a[0].is_contiguous()))
    before = _state(t.model)
    completions, _ = t._generate_single_turn(ids, None, {}, 2)
    assert rollout_logits and set(rollout_logits) == {torch.bfloat16} and not policy_logits  # bf16, on the copy
    assert contiguous and all(contiguous)
    assert all(torch.equal(before[k], v) for k, v in _state(t.model).items())  # policy bit for bit as before
    vocab = len(tok)
    assert len(completions) == len(ids)
    for c in completions:  # valid completions: in-vocabulary tokens that stop at an end-of-turn or the budget
        assert c and all(0 <= x < vocab for x in c)
        assert c[-1] in stops or len(c) == 24
        assert not any(x in stops for x in c[:-1])
    q = copy.model.layers[0].self_attn.q_proj.weight
    with torch.no_grad():
        assert torch.equal(q, _merged_q(t.model).to(torch.bfloat16))  # the LoRA is in the copy's base
        # an "optimiser step": the adapter moves; the copy follows at the next rollout, not before
        t.model.get_base_model().model.layers[0].self_attn.q_proj.lora_B["default"].weight.mul_(-3.0)
        want = _merged_q(t.model).to(torch.bfloat16)
    assert not torch.equal(q, want)
    t._generate_single_turn(ids[:2], None, {}, 2)
    assert not torch.equal(q, want)  # same step: no refresh
    t.state.global_step += 1
    t._generate_single_turn(ids[:2], None, {}, 2)
    assert torch.equal(q, want)


def test_fp32_rollouts_generate_on_the_policy_itself(tmp_path, native):
    t, _, _, ids = _trainer(tmp_path, "hardware=cpu", "rl.rollout_precision=fp32")
    assert (t.rollout_precision, t.rollout_weights) == ("fp32", "merged")
    assert not hasattr(t, "rollout_copy")
    seen = _logit_dtypes(t.model)
    t._generate_single_turn(ids, None, {}, 2)
    assert seen and set(seen) == {torch.float32}


def test_a_grpo_step_with_bf16_rollouts_trains_the_fp32_adapter(tmp_path, native):
    t, _, _, _ = _trainer(tmp_path, "hardware=cpu", "rl.rollout_precision=bf16", "rl.steps=1")
    start = _state(t.model)
    t.train()
    end = _state(t.model)
    lora = [k for k in end if "lora_" in k and ".default." in k]
    assert lora and any(not torch.equal(start[k], end[k]) for k in lora)
    assert all(end[k].dtype == torch.float32 for k in end)
    assert all(torch.equal(start[k], end[k]) for k in end if "lora_" not in k)  # base untouched


def test_auto_on_a_cpu_without_native_bf16_is_a_recorded_fp32_choice(tmp_path, monkeypatch):
    monkeypatch.setattr(prec, "cpu_flags", lambda: AVX2)
    t, _, _, _ = _trainer(tmp_path, "hardware=cpu")
    assert t.rollout_precision == "fp32" and "no native bf16" in t.rollout_precision_why
    assert not hasattr(t, "rollout_copy")
    cfg = _cfg(tmp_path, "hardware=cpu", "rl.rollout_precision=bf16")
    with pytest.raises(ConfigError, match="rl.rollout_precision=bf16: this CPU has no native bf16"):
        rp.decide(cfg, "merged", "cpu")


@pytest.mark.parametrize(("setting", "weights", "device", "flags", "cap", "hw", "want"), [
    ("auto", "merged", "cpu", AMX, None, "auto", ("bf16", "natively")),
    ("auto", "full", "cpu", AMX, None, "bf16-mixed", ("bf16", "natively")),
    ("auto", "merged", "cpu", AVX2, None, "auto", ("fp32", "no avx512_bf16/amx_bf16")),
    ("auto", "merged", "cpu", AMX, "AVX2", "auto", ("fp32", "ONEDNN_MAX_CPU_ISA=AVX2")),
    ("auto", "merged", "cpu", None, None, "auto", ("fp32", "unknown")),
    ("auto", "merged", "cpu", AMX, None, "32-true", ("fp32", "hardware.precision=32-true")),
    ("auto", "merged", "cuda", None, None, "auto", ("bf16", "cuda")),
    ("auto", "adapter", "cpu", AMX, None, "auto", ("fp32", "merge_for_rollouts=false")),
    ("auto", "vllm-sync", "cuda", None, None, "auto", ("vllm", "vLLM")),
    ("fp32", "merged", "cpu", AMX, None, "auto", ("fp32", "asked")),
    ("bf16", "merged", "cpu", AMX, None, "32-true", ("bf16", "asked")),
    ("bf16", "merged", "cpu", None, None, "auto", ("bf16", "asked")),
])
def test_the_choice(setting, weights, device, flags, cap, hw, want):
    got, why = rp.choose(setting, weights, device, flags, cap, hw)
    assert got == want[0] and want[1] in why


@pytest.mark.parametrize(("setting", "weights", "flags", "match"), [
    ("bf16", "merged", AVX2, "no native bf16"),
    ("bf16", "adapter", AMX, "rl.merge_for_rollouts=true"),
    ("bf16", "vllm-sync", AMX, "vLLM picks its own dtype"),
    ("fp32", "vllm-sync", AMX, "vLLM picks its own dtype"),
    ("half", "merged", AMX, "not one of"),
])
def test_what_cannot_run_is_refused(setting, weights, flags, match):
    with pytest.raises(ConfigError, match=match):
        rp.choose(setting, weights, "cpu", flags)
