"""Students: the tiny student's tokenizer and cache, adapters (LoRA, QLoRA, full) and their reload."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from distill_lab.errors import ConfigError
from distill_lab.students import adapter_kind, load_student, student_path
from distill_lab.students.config import StudentConfig
from distill_lab.students.tiny import SPECIAL_TOKENS, build_tiny_model, build_tiny_tokenizer, ensure_tiny
from tests.conftest import compose_config


@pytest.fixture(scope="module")
def tiny_cfg() -> StudentConfig:
    return compose_config(["student=tiny"], stage="train").student


def test_tiny_tokenizer_is_deterministic_and_lossless():
    a, b = build_tiny_tokenizer(), build_tiny_tokenizer()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
    for tok in SPECIAL_TOKENS:  # each special token is one id, never split into bytes
        assert len(a(tok, add_special_tokens=False)["input_ids"]) == 1, tok
    text = "What is 345 + 678? Über 9% — ok!\n<think>\nx\n</think>"
    ids = a(text, add_special_tokens=False)["input_ids"]
    assert a.decode(ids) == text
    assert a.eos_token == "<|im_end|>" and a.pad_token == "<|endoftext|>"
    assert a.pad_token_id != a.eos_token_id


def test_tiny_student_is_cached_and_independent_of_global_rng(tiny_cfg, tmp_path):
    d1 = ensure_tiny(tiny_cfg.tiny, tmp_path)
    d2 = ensure_tiny(tiny_cfg.tiny, tmp_path)
    assert d1 == d2 and (d1 / "model.safetensors").is_file()
    assert len([p for p in tmp_path.iterdir()]) == 1  # no temporary folders left behind
    torch.manual_seed(12345)  # the global RNG must not change the tiny student's weights
    fresh = build_tiny_model(tiny_cfg.tiny, build_tiny_tokenizer())
    model, _ = load_student(replace(tiny_cfg, cache_dir=str(tmp_path)))
    cached = model.state_dict()
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, cached[k]), k
    # a different architecture gets a different cache entry
    other = ensure_tiny(replace(tiny_cfg.tiny, hidden_size=64, head_dim=16), tmp_path)
    assert other != d1
    assert json.loads((other / "config.json").read_text())["hidden_size"] == 64


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_adapter_roundtrip(tiny_cfg, tmp_path):
    model, tok = load_student(tiny_cfg, for_training=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    ids = torch.tensor([tok("<|im_start|>user\nWhat is 1 + 2?<|im_end|>", add_special_tokens=False)["input_ids"]])
    model.eval()
    expected = _logits(model, ids)
    model.save_pretrained(tmp_path / "adapter")
    assert adapter_kind(tmp_path / "adapter") == "peft"
    reloaded, _ = load_student(tiny_cfg, adapter_dir=str(tmp_path / "adapter"))
    base, _ = load_student(tiny_cfg)
    assert torch.allclose(_logits(reloaded, ids), expected, atol=1e-5)
    assert (_logits(base, ids) - expected).abs().max() > 1e-3
    assert not any(p.requires_grad for p in reloaded.parameters())


def test_qlora_student_has_4bit_base_and_trains_lora_only(tiny_cfg):
    import bitsandbytes as bnb

    cfg = replace(tiny_cfg, adapter="qlora")
    model, tok = load_student(cfg, for_training=True)
    layer = model.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(layer.base_layer, bnb.nn.Linear4bit)
    assert layer.base_layer.weight.quant_type == "nf4"
    ids = torch.tensor([tok("The answer is 7.<|im_end|>", add_special_tokens=False)["input_ids"]])
    loss = model(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss) and 3.0 < loss.item() < 8.0  # random init over 261 tokens: about ln(261)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for g in grads.values())


def test_full_adapter_saves_a_checkpoint_that_reloads(tiny_cfg, tmp_path):
    from distill_lab.stages.train.export import save_adapter

    cfg = replace(tiny_cfg, adapter="full")
    model, tok = load_student(cfg, for_training=True)
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)
    save_adapter(model, tok, tmp_path / "adapter", "full")
    assert adapter_kind(tmp_path / "adapter") == "full"
    ids = torch.tensor([[1, 40, 41, 42, 2]])
    model.eval()
    reloaded, _ = load_student(cfg, adapter_dir=str(tmp_path / "adapter"))
    assert torch.allclose(_logits(reloaded, ids), _logits(model, ids), atol=1e-6)


def test_bad_sources_name_the_field(tmp_path):
    cfg = StudentConfig(source="gguf_package", gguf_package="no_such_package_xyz", gguf_file="m.gguf",
                        cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="student.gguf_package"):
        student_path(cfg)
    with pytest.raises(ConfigError, match="student.adapter"):
        StudentConfig(adapter="dora")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        adapter_kind(tmp_path)


@pytest.mark.slow
def test_smollm2_converts_from_the_pypi_gguf_and_generates_text():
    cfg = compose_config(["student=smollm2_135m"], stage="train").student
    model, tok = load_student(cfg)
    assert type(model).__name__ == "LlamaForCausalLM"
    n = sum(p.numel() for p in model.parameters())
    assert 134_000_000 < n < 135_000_000
    assert student_path(cfg) == student_path(cfg)  # second call reads the cache
    text = tok.apply_chat_template([{"role": "user", "content": "What is 7 + 7?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "SmolLM" in text
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(reply.strip()) > 0  # a pretrained model says something in English, not byte noise
    assert sum(ch.isalpha() for ch in reply) > len(reply) / 3
