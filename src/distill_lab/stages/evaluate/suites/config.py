"""Typed config of the ``eval/suite`` group (public benchmarks) and of ``eval.backend``.

Kept beside the suites' code; ``EvalConfig`` (``stages/evaluate/config.py``) holds them as ``eval.suite``
(null unless a suite is chosen: ``eval/suite=gsm8k``) and ``eval.backend``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from distill_lab.errors import check as _check

GRADERS = ("math", "choice", "ifeval")
BACKENDS = ("hf", "openai_compat")


@dataclass
class SuiteConfig:
    """One public benchmark: where its rows come from, how they are asked, how answers are graded.

    ``path`` (a local .jsonl/.json/.parquet/.csv file or a ``save_to_disk`` folder in the hub dataset's
    own schema) replaces the hub download; ``hub_id``/``subset``/``split`` name the hub dataset.
    """

    name: str = "gsm8k"  # gsm8k | math500 | aime24 | aime25 | gpqa_diamond | ifeval
    hub_id: str = "openai/gsm8k"
    subset: Optional[str] = None  # the hub dataset's config name (gsm8k: main, gpqa: gpqa_diamond)
    split: str = "test"
    path: Optional[str] = None
    revision: Optional[str] = None  # a hub commit, for a pinned benchmark
    limit: Optional[int] = None  # the first N rows (after loading, in file order)
    grader: str = "math"  # math | choice | ifeval
    category: str = "reasoning"  # the capability category the report files the suite under
    # the answer-format instruction: {question} is the problem (and {choices} the options for choice)
    prompt_template: str = "{question}"
    system_prompt: Optional[str] = None
    max_new_tokens: int = 32768  # the benchmark's token budget per answer (thinking included)
    stop: list[str] = field(default_factory=list)  # applied only after the thinking has closed
    choice_seed: int = 0  # choice: the options' order is shuffled per question with this seed

    def __post_init__(self) -> None:
        from distill_lab.stages.evaluate.suites.specs import SPECS

        _check(self.name in SPECS, "eval.suite.name", f"unknown suite {self.name!r}; known: {sorted(SPECS)}")
        _check(self.grader in GRADERS, "eval.suite.grader", f"must be one of {GRADERS}, got {self.grader!r}")
        _check(self.max_new_tokens >= 1, "eval.suite.max_new_tokens", "must be >= 1")
        _check(self.limit is None or self.limit >= 1, "eval.suite.limit", "must be >= 1 or null")
        _check(bool(self.hub_id) or bool(self.path), "eval.suite.hub_id", "a hub id or eval.suite.path is required")
        _check(self.category in ("style", "format", "knowledge", "reasoning", "edge_case"), "eval.suite.category",
               f"unknown category {self.category!r}")
        _check(all(isinstance(s, str) and s for s in self.stop), "eval.suite.stop", "stop sequences must be non-empty")
        if self.grader == "choice":
            _check("{choices}" in self.prompt_template, "eval.suite.prompt_template",
                   "a choice suite's template must contain {choices}")
        _check("{question}" in self.prompt_template, "eval.suite.prompt_template", "must contain {question}")


@dataclass
class EvalBackendConfig:
    """Where eval-time generations come from.

    ``hf``: batched ``generate`` on the loaded student (the offline default). ``openai_compat``: an
    OpenAI-compatible chat completions server (``vllm serve``, SGLang, llama.cpp's server) that serves
    the student as ``student_model`` and the base as ``base_model`` (base + LoRA: the LoRA module's
    name and the base's name; a merged export: its served name, ``base_model`` null or the base).
    """

    name: str = "hf"  # hf | openai_compat
    base_url: Optional[str] = None  # e.g. http://127.0.0.1:8000/v1
    api_key_env: Optional[str] = None  # the environment variable holding a key (null: no key)
    student_model: Optional[str] = None  # the served name of the distilled student
    base_model: Optional[str] = None  # the served name of the base model (null: no base via the server)
    concurrency: int = 32  # requests in flight
    max_retries: int = 5
    retry_base_s: float = 1.0
    retry_cap_s: float = 30.0
    timeout_s: float = 3600.0  # per request (a 32k-token thinking answer takes minutes)
    enable_thinking: bool = True  # sent as chat_template_kwargs.enable_thinking (vLLM, SGLang)

    def __post_init__(self) -> None:
        _check(self.name in BACKENDS, "eval.backend.name", f"must be one of {BACKENDS}, got {self.name!r}")
        _check(self.concurrency >= 1, "eval.backend.concurrency", "must be >= 1")
        _check(self.max_retries >= 0, "eval.backend.max_retries", "must be >= 0")
        _check(self.retry_base_s > 0 and self.retry_cap_s >= self.retry_base_s, "eval.backend.retry_cap_s",
               "need retry_cap_s >= retry_base_s > 0")
        _check(self.timeout_s > 0, "eval.backend.timeout_s", "must be > 0")
        if self.name == "openai_compat":
            _check(bool(self.student_model or self.base_model), "eval.backend.student_model",
                   "backend openai_compat needs the served name of the student (or of the base: base_model)")
            _check(bool(self.base_url), "eval.backend.base_url",
                   "required for backend openai_compat (e.g. http://127.0.0.1:8000/v1)")
            _check(bool(self.base_url) and str(self.base_url).startswith(("http://", "https://")),
                   "eval.backend.base_url", f"must be an http(s) URL, got {self.base_url!r}")
