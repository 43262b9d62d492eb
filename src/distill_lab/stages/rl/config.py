"""The ``rl`` config group: GRPO after SFT (``conf/rl/default.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check
from distill_lab.vocab import SPLITS


@dataclass
class RewardWeights:
    correct: float = 1.0  # the family's verifier says the final answer is right
    format: float = 0.2  # a closed thinking block, then an answer the family can read

    def __post_init__(self) -> None:
        _check(self.correct >= 0, "rl.reward.correct", "must be >= 0")
        _check(self.format >= 0, "rl.reward.format", "must be >= 0")
        _check(self.correct + self.format > 0, "rl.reward", "correct and format weights are both 0: no signal")


@dataclass
class RLConfig:
    enabled: bool = False  # `pipeline` runs generate -> train -> rl -> eval -> report when true
    adapter_dir: Optional[str] = None  # a train run's adapter (peft or full); null: a new LoRA on student
    dataset_dir: Optional[str] = None  # a dataset from `generate`: its prompts, references, teacher answers
    split: str = "train"  # whose prompts are rolled out
    max_prompts: Optional[int] = None
    group_size: int = 4  # completions per prompt (GRPO's G); advantages are relative within a group
    # one optimiser step sees prompts_per_step * group_size completions; 4 x 4 = 16: where the CPU rollouts beat
    # llama.cpp (benchmarks/README.md, "RL rollouts vs llama.cpp"); the remedies experiment uses 4 x 4 too
    prompts_per_step: int = 4
    steps: int = 20  # optimiser steps (a rollout batch serves `iterations` of them)
    iterations: int = 1  # optimiser passes per rollout batch (GRPO's mu); > 1 makes the ratio clip bite
    beta: float = 0.04  # KL to the reference (the SFT policy the stage starts from)
    lr: float = 1e-5
    clip_eps: float = 0.2  # PPO-style ratio clip
    temperature: float = 1.0  # sampling temperature of the rollouts
    max_completion_tokens: int = 256  # checked against the teacher's longest answer (student tokenizer)
    allow_short_completions: bool = False  # accept a budget below the teacher's longest answer
    reward: RewardWeights = field(default_factory=RewardWeights)
    save_steps: int = 10  # checkpoint every n steps (re-running the same command resumes from the last)
    resume: bool = True
    vllm: Optional[str] = None  # GPU rollouts through vLLM: colocate | server (README, not tested on CPU)
    vllm_server: str = "http://127.0.0.1:8000"  # rl.vllm=server: where `trl vllm-serve` listens
    merge_for_rollouts: bool = True  # peft student: rollouts on the LoRA merged into the base (rollout_weights.py)
    rollout_precision: str = "auto"  # auto | fp32 | bf16: a bf16 copy for generate (rollout_precision.py)

    def __post_init__(self) -> None:
        _check(self.split in SPLITS, "rl.split", f"unknown split {self.split!r}; expected one of {SPLITS}")
        _check(self.max_prompts is None or self.max_prompts >= 1, "rl.max_prompts", "must be >= 1 or null")
        _check(self.group_size >= 2, "rl.group_size", "must be >= 2 (advantages are relative within a group)")
        _check(self.prompts_per_step >= 1, "rl.prompts_per_step", "must be >= 1")
        _check(self.steps >= 1, "rl.steps", "must be >= 1")
        _check(self.iterations >= 1, "rl.iterations", "must be >= 1")
        _check(self.beta >= 0, "rl.beta", "must be >= 0")
        _check(self.lr > 0, "rl.lr", "must be > 0")
        _check(0 < self.clip_eps < 1, "rl.clip_eps", "must be in (0, 1)")
        _check(self.temperature > 0, "rl.temperature", "must be > 0 (rollouts are sampled)")
        _check(self.max_completion_tokens >= 1, "rl.max_completion_tokens", "must be >= 1")
        _check(self.save_steps >= 1, "rl.save_steps", "must be >= 1")
        _check(self.rollout_precision in ("auto", "fp32", "bf16"), "rl.rollout_precision",
               f"unknown {self.rollout_precision!r}; expected auto, fp32 or bf16")
        _check(self.vllm in (None, "colocate", "server"), "rl.vllm", "must be null, colocate or server")
