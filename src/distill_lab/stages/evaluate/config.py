"""The ``eval`` config group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from distill_lab.errors import check as _check
from distill_lab.stages.evaluate.suites.config import EvalBackendConfig, SuiteConfig
from distill_lab.vocab import HELD_OUT_SPLITS, SPLITS


@dataclass
class EvalConfig:
    dataset_dir: Optional[str] = None  # teacher rows (its answers on held-out prompts) and prompts
    adapter_dir: Optional[str] = None  # artifact of `train`; null evaluates the base student only
    splits: list[str] = field(default_factory=lambda: list(HELD_OUT_SPLITS))
    max_prompts: Optional[int] = None  # per split
    include_base: bool = True
    # auto: per split, the teacher's longest answer on the evaluated prompts in the student's tokens x
    # budget_margin (students/budget.py); a number below that answer is refused unless allow_truncation
    max_new_tokens: Any = "auto"
    budget_margin: float = 1.25
    allow_truncation: bool = False  # run with a budget that cuts the teacher's own answers (flagged in red)
    fallback_max_new_tokens: int = 256  # auto on a split without teacher answers (recorded as unchecked)
    temperature: float = 0.0
    top_p: float = 1.0
    n_samples: int = 1
    batch_size: int = 16
    seed: int = 0
    suite_file: Optional[str] = None  # external JSONL of prompts with references
    suite: Optional[SuiteConfig] = None  # a public benchmark: `eval/suite=gsm8k` (suites/)
    backend: EvalBackendConfig = field(default_factory=EvalBackendConfig)  # hf | openai_compat
    greedy: bool = True  # a greedy pass (false with eval=r1: only the n samples, mean pass@1)
    teacher_max_cost_usd: Optional[float] = None  # cap on eval.teacher_live spend (benchmark suites)
    bootstrap: int = 1000  # resamples over prompts for retention / gain CIs
    confidence: float = 0.95
    pass_k: list[int] = field(default_factory=lambda: [1, 5, 10])  # reported where k <= n_samples
    progress: bool = True  # a progress bar per model
    # generation precision: auto = bf16 autocast where hardware.precision is bf16 on a GPU, fp32 on CPU
    # (measured here: CPU autocast re-casts the weights every decoding step and was slower than fp32)
    precision: str = "auto"  # auto | fp32 | bf16
    teacher_live: bool = False  # ask the `teacher` group for prompts without teacher rows (suite prompts)

    def __post_init__(self) -> None:
        _check(self.max_new_tokens == "auto" or (isinstance(self.max_new_tokens, int)
                                                  and not isinstance(self.max_new_tokens, bool)
                                                  and self.max_new_tokens >= 1),
               "eval.max_new_tokens", f"{self.max_new_tokens!r}: must be auto or an integer >= 1")
        _check(self.budget_margin >= 1.0, "eval.budget_margin", "must be >= 1 (a multiple of the teacher's longest answer)")
        _check(self.fallback_max_new_tokens >= 1, "eval.fallback_max_new_tokens", "must be >= 1")
        _check(self.teacher_max_cost_usd is None or self.teacher_max_cost_usd >= 0, "eval.teacher_max_cost_usd",
               "must be >= 0 or null")
        _check(self.greedy or self.n_samples > 1, "eval.greedy", "false needs eval.n_samples > 1")
        _check(self.backend.name == "hf" or self.suite is not None, "eval.backend.name",
               "openai_compat serves public benchmarks only: choose one with eval/suite=<name>")
        _check(self.suite is None or not (self.dataset_dir or self.suite_file), "eval.suite",
               "a benchmark suite runs on its own: unset eval.dataset_dir / eval.suite_file")
        _check(self.precision in ("auto", "fp32", "bf16"), "eval.precision", "must be auto, fp32 or bf16")
        _check(self.n_samples == 1 or self.temperature > 0, "eval.temperature",
               "must be > 0 when eval.n_samples > 1 (the extra samples are drawn by sampling)")
        _check(self.bootstrap >= 1, "eval.bootstrap", "must be >= 1")
        _check(len(self.pass_k) > 0 and all(k >= 1 for k in self.pass_k), "eval.pass_k",
               "must be a non-empty list of integers >= 1")
        _check(self.temperature >= 0, "eval.temperature", "must be >= 0")
        _check(0 < self.top_p <= 1, "eval.top_p", "must be in (0, 1]")
        _check(self.n_samples >= 1, "eval.n_samples", "must be >= 1")
        _check(self.batch_size >= 1, "eval.batch_size", "must be >= 1")
        _check(self.max_prompts is None or self.max_prompts >= 1, "eval.max_prompts", "must be >= 1")
        _check(0 < self.confidence < 1, "eval.confidence", "must be in (0, 1)")
        for s in self.splits:
            _check(s in SPLITS, "eval.splits", f"unknown split {s!r}")
