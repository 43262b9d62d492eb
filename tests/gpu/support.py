"""Shared pieces of the GPU suite: where it runs, its problem sizes, the student it trains.

The suite runs on CUDA (``make test-gpu``) and is skipped without it. ``DISTILL_LAB_GPU_SUITE_DEVICE=cpu``
runs the same code on the CPU with tiny shapes: a check of the suite's own logic, never a GPU result
(the report says ``"smoke": true``; CUDA-only checks are skipped there).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

DEVICE = os.environ.get("DISTILL_LAB_GPU_SUITE_DEVICE", "cuda")
SMOKE = DEVICE == "cpu"
ON_GPU = DEVICE == "cuda" and torch.cuda.is_available()

gpu_suite = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (ON_GPU or SMOKE), reason="no CUDA device: the GPU suite runs on a GPU (make test-gpu)"),
]
cuda_only = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device (CUDA allocator statistics)")

# Qwen3-0.6B's shape (random init: nothing is downloaded); the smoke run shrinks it
QWEN3_0_6B = {"vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
              "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True,
              "max_position_embeddings": 40960, "rope_theta": 1_000_000.0}
SMOKE_ARCH = {**QWEN3_0_6B, "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
ARCH = SMOKE_ARCH if SMOKE else QWEN3_0_6B


def sizes(gpu, smoke):
    return smoke if SMOKE else gpu


def build_student_dir(root: Path) -> Path:
    """A random-init Qwen3-0.6B-shaped checkpoint (bf16 safetensors) with the tiny student's tokenizer."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from distill_lab.students.tiny import build_tiny_tokenizer

    out = root / "qwen3_0_6b_random"
    if (out / "config.json").is_file():
        return out
    tok = build_tiny_tokenizer()
    cfg = Qwen3Config(**ARCH, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    with torch.device(DEVICE if ON_GPU else "cpu"):
        model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def student_config(path: Path, adapter: str = "qlora"):
    from distill_lab.config import LoraConfig, QuantConfig, StudentConfig

    return StudentConfig(name="qwen3_0_6b_random", source="hf", path=str(path), adapter=adapter, dtype="bfloat16",
                         lora=LoraConfig(r=16, alpha=32, dropout=0.0, target_modules=["all-linear"]),
                         quant=QuantConfig(quant_type="nf4", double_quant=True, compute_dtype="bfloat16",
                                           quant_storage_dtype="bfloat16"))


def train_config(path: Path, *, gradient_checkpointing: bool = False, batch_size: int = 8, max_steps: int = 12,
                 packing: bool = True, max_length: int = 8192):
    from distill_lab.config import Config, DataConfig, HardwareConfig, OptimizerConfig, TrainConfig

    hw = (HardwareConfig(accelerator="cpu", devices=1, strategy="auto", precision="32-true") if SMOKE else
          HardwareConfig(accelerator="gpu", devices=1, strategy="auto", precision="bf16-mixed"))
    return Config(stage="train", seed=0, student=student_config(path), hardware=hw,
                  data=DataConfig(max_length=max_length, packing=packing),
                  optimizer=OptimizerConfig(name="adamw", lr=1e-3, warmup_steps=0, scheduler="constant"),
                  train=TrainConfig(batch_size=batch_size, max_steps=max_steps, log_every_n_steps=1,
                                    gradient_checkpointing=gradient_checkpointing))


def examples(n: int, lo: int, hi: int, seed: int = 0, vocab: int = 64):
    """Rows of random lengths in [lo, hi] over ``vocab`` token ids (learnable within a few steps), the
    first third of each masked as a prompt."""
    from distill_lab.stages.train.packing import IGNORE, Example

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(lo, hi + 1, (1,), generator=g))
        ids = torch.randint(5, 5 + vocab, (length,), generator=g).tolist()
        out.append(Example(row_id=str(i), input_ids=ids, labels=[IGNORE] * (length // 3) + ids[length // 3:]))
    return out


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.detach().double().flatten(), b.detach().double().flatten(), dim=0))
