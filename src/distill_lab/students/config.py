"""The ``student`` config group: which model, which adapter, how it is loaded (``conf/student/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check


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
