"""Config of the train stage: ``data``, ``optimizer``, ``train``, ``export`` and ``hardware``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check
from distill_lab.stages.train.checks import check_hardware, check_resume
from distill_lab.stages.train.optimizers import OPTIMIZERS


@dataclass
class DataConfig:
    max_length: int = 512
    overlong: str = "drop"  # drop | truncate | error
    packing: bool = False
    padding_free: bool = True  # unpacked: a micro-batch's rows end to end in one sequence, no padding
    enable_thinking: bool = True
    keep_past_reasoning: bool = False
    val_fraction: float = 0.05
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check(self.max_length >= 8, "data.max_length", "must be >= 8")
        _check(self.overlong in ("drop", "truncate", "error"), "data.overlong",
               "must be drop, truncate or error")
        _check(0 <= self.val_fraction < 1, "data.val_fraction", "must be in [0, 1)")


@dataclass
class OptimizerConfig:
    name: str = "adamw"  # a name registered in optimizers.py
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: str = "cosine"  # cosine | linear | constant
    warmup_steps: int = 0
    grad_clip: Optional[float] = 1.0

    def __post_init__(self) -> None:
        _check(self.name in OPTIMIZERS, "optimizer.name", f"unknown optimizer {self.name!r}; known: {', '.join(OPTIMIZERS)}")
        _check(self.lr > 0, "optimizer.lr", f"learning rate must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optimizer.betas",
               "must be two numbers in [0, 1)")
        _check(self.scheduler in ("cosine", "linear", "constant"), "optimizer.scheduler",
               "must be cosine, linear or constant")
        _check(self.warmup_steps >= 0, "optimizer.warmup_steps", "must be >= 0")
        _check(self.grad_clip is None or self.grad_clip > 0, "optimizer.grad_clip", "must be > 0 or null")


@dataclass
class TrainConfig:
    dataset_dir: Optional[str] = None  # artifact of `generate` (a dataset folder)
    output_dir: Optional[str] = None  # default: <run dir>
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = 100
    epochs: Optional[int] = None  # when set, overrides max_steps
    val_every_n_steps: int = 0  # 0: no validation
    checkpoint_every_n_steps: int = 0  # 0: only the final adapter
    resume: str = "never"  # never | auto | <checkpoint path>
    log_every_n_steps: int = 10
    gradient_checkpointing: bool = False
    export_merged: bool = False  # also write <run_dir>/merged: base + adapter merged, plain HF format
    # equal-dose ablations (README "Equal tokens and mixed effort"): train until this many tokens have been
    # trained on (the step count is derived from the deterministic schedule; the run ends within one
    # step's tokens above it). null = off. With it, max_steps (or epochs) is a cap the budget must fit.
    token_budget: Optional[int] = None
    # supervised: loss-bearing tokens (equal supervision); processed: every row token through forward and
    # backward, prompt included (equal compute at a fixed student: training FLOPs ~ 6 x params x tokens)
    token_budget_unit: str = "supervised"
    # learning rate per run chosen on a validation slice of the train pool (data.val_fraction, never
    # test/ood): one training per value, the lowest validation answer-token loss wins (lr_grid.py)
    lr_grid: Optional[list[float]] = None

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "train.batch_size", f"batch size must be >= 1, got {self.batch_size}")
        _check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        _check(self.max_steps >= 1, "train.max_steps", "must be >= 1")
        _check(self.epochs is None or self.epochs >= 1, "train.epochs", "must be >= 1 or null")
        _check(self.val_every_n_steps >= 0, "train.val_every_n_steps", "must be >= 0")
        _check(self.checkpoint_every_n_steps >= 0, "train.checkpoint_every_n_steps", "must be >= 0")
        _check(self.log_every_n_steps >= 1, "train.log_every_n_steps", "must be >= 1")
        check_resume(self.resume)
        _check(self.token_budget is None or self.token_budget >= 1, "train.token_budget", "must be >= 1 or null")
        _check(self.token_budget_unit in ("supervised", "processed"), "train.token_budget_unit",
               f"must be supervised or processed, got {self.token_budget_unit!r}")
        if self.lr_grid is not None:
            _check(len(self.lr_grid) >= 1, "train.lr_grid", "must list at least one learning rate (or be null)")
            _check(all(v > 0 for v in self.lr_grid), "train.lr_grid", f"every learning rate must be > 0, got {self.lr_grid}")
            _check(len(set(self.lr_grid)) == len(self.lr_grid), "train.lr_grid", f"repeats a value: {self.lr_grid}")


GGUF_DTYPES = ("f32", "f16", "bf16", "q8_0")


@dataclass
class ExportConfig:
    """Exports written after training, besides the adapter (``train.export_merged`` adds the merged model)."""

    gguf: bool = False  # also write <run_dir>/gguf/model-<gguf_dtype>.gguf (llama.cpp) from the merged model
    gguf_dtype: str = "f16"  # f32 | f16 | bf16 | q8_0 for 2-D weights; norms and other 1-D tensors stay f32

    def __post_init__(self) -> None:
        _check(self.gguf_dtype in GGUF_DTYPES, "export.gguf_dtype",
               f"must be one of {', '.join(GGUF_DTYPES)}, got {self.gguf_dtype!r}")


@dataclass
class HardwareConfig:
    accelerator: str = "cpu"  # cpu | gpu | auto
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | fsdp2
    precision: str = "32-true"  # auto | 32-true | bf16-mixed | bf16-true (backends/precision.py)
    threads: Optional[int] = None  # torch.set_num_threads
    kernels: str = "auto"  # auto | reference | cpu_fast | cuda_varlen: the training backend (backends/select.py)

    def __post_init__(self) -> None:
        _check(self.accelerator in ("cpu", "gpu", "auto"), "hardware.accelerator", "must be cpu, gpu or auto")
        _check(self.devices >= 1, "hardware.devices", "must be >= 1")
        _check(self.num_nodes >= 1, "hardware.num_nodes", "must be >= 1")
        _check(self.strategy in ("auto", "ddp", "fsdp2"), "hardware.strategy", "must be auto, ddp or fsdp2")
        check_hardware(self.accelerator, self.strategy, self.precision, self.kernels)
        _check(self.threads is None or self.threads >= 1, "hardware.threads", "must be >= 1 or null")
