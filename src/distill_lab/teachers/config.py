"""The ``teacher`` config group: which teacher, how it thinks, what it costs (``conf/teacher/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check
from distill_lab.teachers.providers import PROVIDERS, known_provider
from distill_lab.vocab import DEFAULT_EFFORTS, Effort


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
    allowed_efforts: list[str] = field(default_factory=lambda: list(DEFAULT_EFFORTS))
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
    # anthropic-beta header values; null: what the model table says (teachers/anthropic_models.py)
    betas: Optional[list[str]] = None
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
        _check(known_provider(self.provider), "teacher.provider",
               f"unknown provider {self.provider!r}; expected one of {', '.join(PROVIDERS)} or package.module:Class")
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
