"""What each Claude model takes in a Messages request: the one place these facts live.

Sources: the API's model pages and migration guides (platform.claude.com/docs, read 2026-11) and the
effort documentation at its launch. Where the Models API reports a capability (``GET /v1/models/{id}``:
``capabilities.thinking.types``, ``capabilities.effort``, ``max_tokens``), the start-up check uses the
report instead (``AnthropicTeacher.preflight``); this table decides what to *send* (the beta header) and
checks the config before any request, also where a proxy has no Models API.

- ``thinking``: the ``thinking.type`` values the model takes. Opus 4.7 and later take only ``adaptive``
  (``enabled`` with ``budget_tokens`` is a 400); Opus 4.5 and Haiku 4.5 only ``enabled``.
- ``efforts``: the ``output_config.effort`` levels (empty: the model takes no effort parameter).
- ``effort_beta``: the beta header the model needs with ``output_config.effort``. Claude Opus 4.5 shipped
  effort as a beta (``effort-2025-11-24``); later models take ``output_config`` as a stable field.
- ``max_output``: the most output tokens a request may ask for (None: not recorded here).

A model missing from the table is not guessed at: ``teacher.betas`` must then be set explicitly
(``[]`` for none) when ``teacher.output_effort`` is on, and the Models API's report (when the server has
one) checks the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EFFORT_BETA = "effort-2025-11-24"
ALL_EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True)
class ModelFacts:
    thinking: tuple[str, ...]
    efforts: tuple[str, ...]
    effort_beta: str | None = None
    max_output: int | None = None


MODELS: dict[str, ModelFacts] = {
    "claude-opus-5-5": ModelFacts(("adaptive",), ALL_EFFORTS, None, 128_000),
    "claude-opus-5": ModelFacts(("adaptive",), ALL_EFFORTS, None, 128_000),
    "claude-opus-4-8": ModelFacts(("adaptive",), ALL_EFFORTS, None, 128_000),
    "claude-opus-4-7": ModelFacts(("adaptive",), ALL_EFFORTS, None, 128_000),
    "claude-opus-4-6": ModelFacts(("enabled", "adaptive"), ("low", "medium", "high", "max"), None, None),
    "claude-sonnet-4-6": ModelFacts(("enabled", "adaptive"), ("low", "medium", "high", "max"), None, None),
    "claude-opus-4-5": ModelFacts(("enabled",), ("low", "medium", "high"), EFFORT_BETA, 64_000),
    "claude-haiku-4-5": ModelFacts(("enabled",), (), None, 64_000),
}

_DATED = re.compile(r"^(.*)-\d{8}$")


def facts(model: str) -> ModelFacts | None:
    """The table's entry for ``model`` (a dated snapshot id such as ``claude-opus-4-5-20251101`` maps to
    its alias); None for a model the table does not know."""
    if model in MODELS:
        return MODELS[model]
    m = _DATED.match(model)
    return MODELS.get(m.group(1)) if m else None


def betas_for(model: str, output_effort: bool, explicit: list[str] | None) -> list[str]:
    """The ``anthropic-beta`` values to send: ``teacher.betas`` when given, else what the table says."""
    if explicit is not None:
        return list(explicit)
    f = facts(model)
    return [f.effort_beta] if (f and output_effort and f.effort_beta) else []


def check_teacher(cfg) -> None:
    """Config-time checks of an anthropic teacher against the table (``ConfigError`` naming the field)."""
    from distill_lab.config import ConfigError

    f = facts(cfg.model)
    eff = cfg.effort_name
    if f is None:
        if cfg.output_effort and cfg.betas is None:
            raise ConfigError(f"teacher.betas: {cfg.model!r} is not in distill_lab's model table "
                              "(teachers/anthropic_models.py), so whether output_config.effort needs a beta header "
                              "is not guessed: set teacher.betas=[] (none) or teacher.betas=[effort-2025-11-24]")
        return
    if cfg.thinking_mode not in f.thinking:
        raise ConfigError(f"teacher.thinking_mode: {cfg.model} takes thinking type {list(f.thinking)}, "
                          f"not {cfg.thinking_mode!r}")
    if cfg.output_effort and not f.efforts:
        raise ConfigError(f"teacher.output_effort: {cfg.model} takes no output_config.effort; set it false")
    if cfg.output_effort and eff not in f.efforts:
        raise ConfigError(f"teacher.effort: {cfg.model} takes effort {list(f.efforts)}, not {eff!r}")
    if f.max_output and cfg.max_tokens > f.max_output:
        raise ConfigError(f"teacher.max_tokens: {cfg.max_tokens} is above {cfg.model}'s limit of {f.max_output}")
