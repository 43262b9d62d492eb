"""Typed configuration schemas, registered with Hydra's ConfigStore.

``conf/config.yaml`` starts its defaults list with ``_config_schema``, the ``Config`` dataclass stored
here, so every group option (``conf/<group>/<option>.yaml``) is merged into a typed node.

Validation happens in two layers:
1. OmegaConf checks keys and types while Hydra composes (a misspelt key or a string where an int is
   expected fails at composition time, naming ``full_key``).
2. ``validate(cfg)`` turns the composed config into these dataclasses (``OmegaConf.to_object``), which
   runs every ``__post_init__``: range checks that raise ``ConfigError`` naming the field.

Each stage receives the resulting ``Config`` object, never a raw dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value is out of range or inconsistent. The message names the field."""


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {msg}")


class Effort(str, Enum):
    """Reasoning effort of the teacher: the ablation axis (contract)."""

    low = "low"
    medium = "medium"
    high = "high"
    xhigh = "xhigh"
    max = "max"


# --------------------------------------------------------------------------------------- teacher
@dataclass
class PriceConfig:
    """USD per million tokens. ``batch_discount`` multiplies every price in batch mode."""

    input: float = 0.0
    output: float = 0.0
    cache_write: float = 0.0
    cache_read: float = 0.0
    batch_discount: float = 0.5

    def __post_init__(self) -> None:
        for name in ("input", "output", "cache_write", "cache_read"):
            _check(getattr(self, name) >= 0, f"teacher.prices.{name}", "must be >= 0")
        _check(0 < self.batch_discount <= 1, "teacher.prices.batch_discount", "must be in (0, 1]")


@dataclass
class TeacherConfig:
    """One schema for every provider; provider-specific keys are ignored by the others.

    ``effort`` is mapped by each provider: oracle -> trace detail; anthropic -> ``effort_budgets``
    (thinking ``budget_tokens``) and, when ``output_effort`` is set, ``output_config.effort``;
    openai_compat -> ``reasoning_effort``.
    """

    provider: str = "oracle"  # oracle | anthropic | openai_compat
    model: str = "oracle-v1"
    effort: Effort = Effort.medium
    allowed_efforts: list[str] = field(default_factory=lambda: ["low", "medium", "high"])
    # sampling
    temperature: float = 1.0
    top_p: Optional[float] = None
    max_tokens: int = 16000
    # anthropic thinking
    thinking_mode: str = "enabled"  # enabled | adaptive
    thinking_display: Optional[str] = None  # e.g. "summarized"
    effort_budgets: dict[str, int] = field(
        default_factory=lambda: {"low": 2048, "medium": 8192, "high": 16000, "xhigh": 32000, "max": 64000}
    )
    output_effort: bool = False  # also send output_config.effort
    stream: bool = True
    batch: bool = False
    batch_poll_seconds: float = 30.0
    system_prompt: Optional[str] = None
    cache_system_prompt: bool = True
    # transport
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None  # name of the environment variable holding the key
    timeout_s: float = 600.0
    max_retries: int = 8
    prices: PriceConfig = field(default_factory=PriceConfig)

    def __post_init__(self) -> None:
        _check(self.provider in ("oracle", "anthropic", "openai_compat"), "teacher.provider",
               f"unknown provider {self.provider!r}; expected oracle, anthropic or openai_compat")
        eff = self.effort.value if isinstance(self.effort, Effort) else str(self.effort)
        _check(eff in self.allowed_efforts, "teacher.effort",
               f"{eff!r} is not allowed for {self.provider}/{self.model}; allowed: {self.allowed_efforts}")
        _check(self.max_tokens > 0, "teacher.max_tokens", "must be > 0")
        _check(self.temperature >= 0, "teacher.temperature", "must be >= 0")
        _check(self.top_p is None or 0 < self.top_p <= 1, "teacher.top_p", "must be in (0, 1]")
        _check(self.thinking_mode in ("enabled", "adaptive"), "teacher.thinking_mode",
               "must be 'enabled' or 'adaptive'")
        for k, v in self.effort_budgets.items():
            _check(v >= 1024, f"teacher.effort_budgets.{k}", "Anthropic requires budget_tokens >= 1024")
        _check(self.max_retries >= 0, "teacher.max_retries", "must be >= 0")
        _check(self.timeout_s > 0, "teacher.timeout_s", "must be > 0")
        _check(self.batch_poll_seconds > 0, "teacher.batch_poll_seconds", "must be > 0")
        _check(self.thinking_display in (None, "summarized", "omitted"), "teacher.thinking_display",
               "must be null, 'summarized' or 'omitted'")
        for e in self.allowed_efforts:
            _check(e in Effort.__members__, "teacher.allowed_efforts", f"unknown effort {e!r}")
        if self.provider == "anthropic":
            # extended thinking is incompatible with temperature/top_k changes; top_p only in [0.95, 1]
            _check(self.temperature == 1.0, "teacher.temperature",
                   "Anthropic thinking requires temperature 1.0 (remove the override)")
            _check(self.top_p is None or self.top_p >= 0.95, "teacher.top_p",
                   "Anthropic thinking accepts top_p only in [0.95, 1]")
            if self.thinking_mode == "enabled":
                budget = self.effort_budgets.get(eff)
                _check(budget is not None, f"teacher.effort_budgets.{eff}",
                       f"no thinking budget for effort {eff!r} (thinking_mode=enabled needs one)")
                _check(self.max_tokens > budget, "teacher.max_tokens",
                       f"must exceed the thinking budget ({budget} for effort {eff!r}), got {self.max_tokens}")

    @property
    def effort_name(self) -> str:
        return self.effort.value if isinstance(self.effort, Effort) else str(self.effort)


# --------------------------------------------------------------------------------------- student
@dataclass
class TinyArchConfig:
    """Architecture of the ``tiny`` student (Qwen3, random init)."""

    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 384
    max_position_embeddings: int = 2048

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "head_dim", "intermediate_size", "max_position_embeddings"):
            _check(getattr(self, name) > 0, f"student.tiny.{name}", "must be > 0")


@dataclass
class LoraConfig:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    use_rslora: bool = False

    def __post_init__(self) -> None:
        _check(self.r >= 1, "student.lora.r", f"LoRA rank must be >= 1, got {self.r}")
        _check(self.alpha > 0, "student.lora.alpha", "must be > 0")
        _check(0 <= self.dropout < 1, "student.lora.dropout", "must be in [0, 1)")
        _check(len(self.target_modules) > 0, "student.lora.target_modules", "must not be empty")


@dataclass
class QuantConfig:
    """bitsandbytes 4-bit settings for ``adapter=qlora``."""

    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    quant_storage_dtype: str = "bfloat16"  # equal to the FSDP param dtype

    def __post_init__(self) -> None:
        _check(self.quant_type in ("nf4", "fp4"), "student.quant.quant_type", "must be nf4 or fp4")


@dataclass
class StudentConfig:
    name: str = "tiny"
    source: str = "tiny"  # tiny | hf | gguf_package
    path: Optional[str] = None  # HF id or local folder (source=hf)
    gguf_package: Optional[str] = None  # PyPI package shipping the GGUF (source=gguf_package)
    gguf_file: Optional[str] = None
    cache_dir: str = "${oc.env:DISTILL_LAB_CACHE,${oc.env:HOME}/.cache/distill_lab}"
    tiny: TinyArchConfig = field(default_factory=TinyArchConfig)
    adapter: str = "lora"  # lora | qlora | full
    lora: LoraConfig = field(default_factory=LoraConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    dtype: str = "float32"  # weight dtype at load time
    chat_template: Optional[str] = None  # override the tokenizer's template (a jinja string)

    def __post_init__(self) -> None:
        _check(self.source in ("tiny", "hf", "gguf_package"), "student.source",
               f"unknown source {self.source!r}; expected tiny, hf or gguf_package")
        _check(self.adapter in ("lora", "qlora", "full"), "student.adapter",
               f"unknown adapter {self.adapter!r}; expected lora, qlora or full")
        _check(self.dtype in ("float32", "bfloat16", "float16"), "student.dtype",
               "must be float32, bfloat16 or float16")
        if self.source == "hf":
            _check(bool(self.path), "student.path", "required when student.source=hf")
        if self.source == "gguf_package":
            _check(bool(self.gguf_package and self.gguf_file), "student.gguf_file",
                   "gguf_package and gguf_file are required when student.source=gguf_package")


# --------------------------------------------------------------------------------------- recipe
@dataclass
class FamilySpec:
    """A built-in task family in a recipe mix (``distill_lab.tasks``; ``params`` go to its constructor)."""

    name: str = MISSING
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.weight > 0, f"recipe.families[{self.name}].weight", "must be > 0")
        if self.name != MISSING:
            _check(bool(self.name), "recipe.families.name", "must not be empty")


@dataclass
class SourceSpec:
    """An external prompt source or teacher dataset (see ``data/sources.py``).

    ``kind``: jsonl | parquet | hf (prompts, optional reference) or teacher_dataset (rows with the
    teacher's answer: ``messages`` whose assistant turn has ``reasoning_content``, ``thinking`` or
    ``reasoning``, or ``<think>`` in its content; trained on directly, no generation).
    """

    kind: str = MISSING  # jsonl | parquet | hf | teacher_dataset
    path: str = MISSING  # a file, a folder saved with save_to_disk / holding data files, or a hub id
    name: Optional[str] = None  # shown in stats and the card; default: the file name
    format: Optional[str] = None  # teacher_dataset files: jsonl | parquet | hf (default: from the path)
    weight: float = 1.0
    prompt_field: str = "prompt"  # dotted paths allowed (``question.text``)
    reference_field: Optional[str] = "reference"
    messages_field: str = "messages"
    split_field: Optional[str] = "split"  # a row's own split, when it has this field
    split: Optional[str] = None  # every row goes to this split (default: split_field, else train)
    hf_split: Optional[str] = None  # which split of a DatasetDict to read (default: all)
    category: str = "knowledge"
    task: Optional[str] = None  # a registered family that verifies the answers (default: freeform)
    shuffle: bool = True  # order rows by the recipe seed (a smaller size stays a prefix)
    limit: Optional[int] = None  # read at most this many rows

    def __post_init__(self) -> None:
        _check(self.kind in ("jsonl", "parquet", "hf", "teacher_dataset"), "recipe.sources.kind",
               f"unknown source kind {self.kind!r}; expected jsonl, parquet, hf or teacher_dataset")
        _check(self.weight > 0, "recipe.sources.weight", "must be > 0")
        _check(self.format in (None, "jsonl", "parquet", "hf"), "recipe.sources.format",
               f"unknown format {self.format!r}; expected jsonl, parquet or hf")
        _check(self.split in (None, "train", "test", "ood"), "recipe.sources.split",
               f"unknown split {self.split!r}; expected train, test or ood")
        _check(self.category in ("style", "format", "knowledge", "reasoning", "edge_case"),
               "recipe.sources.category", f"unknown category {self.category!r}")
        _check(self.limit is None or self.limit >= 1, "recipe.sources.limit", "must be >= 1 or null")


@dataclass
class RecipeConfig:
    name: str = "arithmetic"
    families: list[FamilySpec] = field(default_factory=lambda: [FamilySpec(name="addition")])
    sources: list[SourceSpec] = field(default_factory=list)
    size: int = 400  # train prompts
    test_size: int = 40  # held-out prompts, same distribution
    ood_size: int = 40  # held-out prompts, beyond the distribution
    seed: int = 0  # the prompt pool depends on this seed only (not on teacher or effort)
    verify: bool = True
    strict: bool = True  # a bad source row stops the run (else it is skipped and counted)
    dedup: bool = True  # exact and near-duplicate removal within each split
    near_dup_threshold: float = 0.8  # Jaccard similarity of word 3-shingles counted as a near-duplicate
    decontaminate: bool = True  # train never shares a prompt or an n-gram with test/ood
    ngram: int = 8  # n-gram size (words) for decontamination
    shortfall: str = "shrink"  # a member runs short: shrink (keep the mix, smaller total) | fill | error

    def __post_init__(self) -> None:
        _check(self.size >= 1, "recipe.size", f"must be >= 1, got {self.size}")
        _check(self.test_size >= 0, "recipe.test_size", "must be >= 0")
        _check(self.ood_size >= 0, "recipe.ood_size", "must be >= 0")
        _check(bool(self.families) or bool(self.sources), "recipe.families",
               "a recipe needs at least one family or source")
        _check(self.ngram >= 1, "recipe.ngram", "must be >= 1")
        _check(0 < self.near_dup_threshold <= 1, "recipe.near_dup_threshold", "must be in (0, 1]")
        _check(self.shortfall in ("shrink", "fill", "error"), "recipe.shortfall",
               f"must be shrink, fill or error, got {self.shortfall!r}")


# ------------------------------------------------------------------------------------ generate
@dataclass
class GenerateConfig:
    output_dir: Optional[str] = None  # default: <run dir>/dataset
    samples_per_prompt: int = 1
    splits: list[str] = field(default_factory=lambda: ["train", "test", "ood"])
    concurrency: int = 16
    requests_per_minute: Optional[float] = None
    input_tokens_per_minute: Optional[float] = None
    output_tokens_per_minute: Optional[float] = None
    # cap on the dataset's teacher spend: a resumed run counts what its journal already cost; each request
    # is admitted only if its worst case (max_tokens out) still fits, so the cap is never crossed
    max_cost_usd: Optional[float] = None
    shard_rows: int = 1000
    progress: bool = True
    # retries (teacher.max_retries is the count): exponential backoff with jitter, >= retry-after
    retry_base_s: float = 1.0
    retry_cap_s: float = 60.0
    # the journal flushes every row (safe against kill -9) and fsyncs at most this often (power loss
    # loses at most this window); 0 fsyncs every row
    fsync_interval_s: float = 0.5
    # quality filters; rejected rows are kept in the `rejected` split with their reason
    filters: list[str] = field(default_factory=lambda: ["max_tokens", "empty_answer", "unclosed_thinking",
                                                        "empty_thinking", "unverified", "duplicate"])
    # splits whose caught rows move to `rejected`; held-out rows are only flagged (reject_reason), since
    # eval measures the teacher on them too
    filter_splits: list[str] = field(default_factory=lambda: ["train"])
    batch_max_rounds: int = 3  # batch mode: resubmissions of errored/expired requests

    def __post_init__(self) -> None:
        from distill_lab.generation.filters import FILTERS

        for f in self.filters:
            _check(f in FILTERS, "generate.filters", f"unknown filter {f!r}; known: {list(FILTERS)}")
        _check(self.retry_base_s > 0, "generate.retry_base_s", "must be > 0")
        _check(self.retry_cap_s >= self.retry_base_s, "generate.retry_cap_s", "must be >= generate.retry_base_s")
        _check(self.shard_rows >= 1, "generate.shard_rows", "must be >= 1")
        _check(self.fsync_interval_s >= 0, "generate.fsync_interval_s", "must be >= 0")
        _check(self.batch_max_rounds >= 1, "generate.batch_max_rounds", "must be >= 1")
        for sp in self.filter_splits:
            _check(sp in ("train", "test", "ood"), "generate.filter_splits", f"unknown split {sp!r}")
        _check(self.samples_per_prompt >= 1, "generate.samples_per_prompt", "must be >= 1")
        _check(self.concurrency >= 1, "generate.concurrency", "must be >= 1")
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            v = getattr(self, name)
            _check(v is None or v > 0, f"generate.{name}", "must be > 0 (or null for no limit)")
        _check(self.max_cost_usd is None or self.max_cost_usd >= 0, "generate.max_cost_usd", "must be >= 0")
        for s in self.splits:
            _check(s in ("train", "test", "ood"), "generate.splits", f"unknown split {s!r}")


# ---------------------------------------------------------------------------------- data / train
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
    name: str = "adamw"  # adamw | adamw_8bit
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: str = "cosine"  # cosine | linear | constant
    warmup_steps: int = 0
    grad_clip: Optional[float] = 1.0

    def __post_init__(self) -> None:
        _check(self.name in ("adamw", "adamw_8bit"), "optimizer.name", "must be adamw or adamw_8bit")
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

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "train.batch_size", f"batch size must be >= 1, got {self.batch_size}")
        _check(self.grad_accum >= 1, "train.grad_accum", "must be >= 1")
        _check(self.max_steps >= 1, "train.max_steps", "must be >= 1")
        _check(self.epochs is None or self.epochs >= 1, "train.epochs", "must be >= 1 or null")
        _check(self.val_every_n_steps >= 0, "train.val_every_n_steps", "must be >= 0")
        _check(self.checkpoint_every_n_steps >= 0, "train.checkpoint_every_n_steps", "must be >= 0")
        _check(self.log_every_n_steps >= 1, "train.log_every_n_steps", "must be >= 1")


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
    precision: str = "32-true"  # 32-true | bf16-mixed | bf16-true | 16-mixed
    threads: Optional[int] = None  # torch.set_num_threads

    def __post_init__(self) -> None:
        _check(self.accelerator in ("cpu", "gpu", "auto"), "hardware.accelerator", "must be cpu, gpu or auto")
        _check(self.devices >= 1, "hardware.devices", "must be >= 1")
        _check(self.num_nodes >= 1, "hardware.num_nodes", "must be >= 1")
        _check(self.strategy in ("auto", "ddp", "fsdp2"), "hardware.strategy", "must be auto, ddp or fsdp2")
        _check(self.precision in ("32-true", "bf16-mixed", "bf16-true", "16-mixed"), "hardware.precision",
               "must be 32-true, bf16-mixed, bf16-true or 16-mixed")
        _check(self.threads is None or self.threads >= 1, "hardware.threads", "must be >= 1 or null")


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb | csv
    project: str = "distill_lab"
    entity: Optional[str] = None
    group: Optional[str] = None  # default: the sweep directory's name under -m
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"  # online | offline | disabled

    def __post_init__(self) -> None:
        _check(self.name in ("none", "wandb", "csv"), "logger.name", "must be none, wandb or csv")
        _check(self.mode in ("online", "offline", "disabled"), "logger.mode",
               "must be online, offline or disabled")


# ----------------------------------------------------------------------------------------- eval
from distill_lab.evaluation.suites.config import EvalBackendConfig, SuiteConfig  # noqa: E402 (needs ConfigError)


@dataclass
class EvalConfig:
    dataset_dir: Optional[str] = None  # teacher rows (its answers on held-out prompts) and prompts
    adapter_dir: Optional[str] = None  # artifact of `train`; null evaluates the base student only
    splits: list[str] = field(default_factory=lambda: ["test", "ood"])
    max_prompts: Optional[int] = None  # per split
    include_base: bool = True
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n_samples: int = 1
    batch_size: int = 16
    seed: int = 0
    suite_file: Optional[str] = None  # external JSONL of prompts with references
    suite: Optional[SuiteConfig] = None  # a public benchmark: `eval/suite=gsm8k` (evaluation/suites/)
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
        _check(self.max_new_tokens >= 1, "eval.max_new_tokens", "must be >= 1")
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
            _check(s in ("train", "test", "ood"), "eval.splits", f"unknown split {s!r}")


@dataclass
class ReportConfig:
    eval_dirs: list[str] = field(default_factory=list)  # artifacts of `eval`
    sweep_dir: Optional[str] = None  # a multirun directory: collect every run in it
    output_dir: Optional[str] = None
    failures_per_category: int = 3  # example failures shown per category and split
    plots: bool = True  # PNG plots (matplotlib, Agg backend)

    def __post_init__(self) -> None:
        _check(self.failures_per_category >= 0, "report.failures_per_category", "must be >= 0")


# ----------------------------------------------------------------------------------------- root
@dataclass
class Config:
    stage: str = MISSING  # set by the CLI: generate | train | eval | report | pipeline
    seed: int = 0
    print_config: bool = False
    run_dir: Optional[str] = None  # default: Hydra's output dir
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        _check(self.stage == MISSING or self.stage in STAGES, "stage", f"unknown stage {self.stage!r}; expected one of {STAGES}")


STAGES = ("generate", "train", "eval", "report", "pipeline")


def register_configs() -> None:
    """Store the root schema; ``conf/config.yaml`` names it first in its defaults list."""
    ConfigStore.instance().store(name="_config_schema", node=Config)


def validate(cfg: DictConfig | Config) -> Config:
    """Composed DictConfig -> typed ``Config``; raises ``ConfigError`` naming the bad field."""
    if isinstance(cfg, Config):
        return cfg
    try:
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except OmegaConfBaseException as e:  # type / key errors that survived composition
        raise ConfigError(str(e)) from e
    assert isinstance(obj, Config), f"expected Config, got {type(obj).__name__}"
    return obj


def to_container(cfg: Config | DictConfig) -> dict[str, Any]:
    """Plain, resolved dict of a config (enums as their values), for manifests and loggers."""
    node = OmegaConf.structured(cfg) if isinstance(cfg, Config) else cfg
    out = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    assert isinstance(out, dict)
    return out
