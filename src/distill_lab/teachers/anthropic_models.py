"""What each Claude model takes in a Messages request: the one place these facts live.

Sources: the API's model pages and migration guides (platform.claude.com/docs, read 2026-11) and the
effort documentation at its launch. The table decides what to *send* (the beta header). The start-up
check (``AnthropicTeacher.preflight``, before any paid request) checks thinking type, effort and
max_tokens against what the Models API reports (``GET /v1/models/{id}``: ``capabilities.thinking.types``,
``capabilities.effort``, ``max_tokens``) and against this table for whatever it does not report, or
where a proxy has no Models API at all.

- ``thinking``: the ``thinking.type`` values the model takes. Opus 4.7 and later take only ``adaptive``
  (``enabled`` with ``budget_tokens`` is a 400); Opus 4.5 and Haiku 4.5 only ``enabled``.
- ``efforts``: the ``output_config.effort`` levels (empty: the model takes no effort parameter).
- ``effort_beta``: the beta header the model needs with ``output_config.effort``. Claude Opus 4.5 shipped
  effort as a beta (``effort-2025-11-24``); later models take ``output_config`` as a stable field.
- ``max_output``: the most output tokens a request may ask for (None: not recorded here).

A model missing from the table is not guessed at: ``teacher.betas`` must then be set explicitly
(``[]`` for none) when ``teacher.output_effort`` is on (asked at the start-up check, once the Models API
has said whether the model exists: a mistyped name is reported as that), and the Models API's report
(when the server has one) checks the rest.
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


def check_betas(cfg) -> None:
    """A model the table does not know needs ``teacher.betas`` set when it sends effort (checked at the
    start-up check, after the Models API has said whether the model exists at all)."""
    from distill_lab.errors import ConfigError

    if facts(cfg.model) is None and cfg.output_effort and cfg.betas is None:
        raise ConfigError(f"teacher.betas: {cfg.model!r} is not in distill_lab's model table "
                          "(teachers/anthropic_models.py), so whether output_config.effort needs a beta header "
                          "is not guessed: set teacher.betas=[] (none) or teacher.betas=[effort-2025-11-24] "
                          f"(the table knows {sorted(MODELS)})")


def _no_report(*path: str) -> bool | None:
    return None


def check_teacher(cfg, reported=_no_report, max_output: int | None = None) -> None:
    """The teacher's thinking type, effort and max_tokens against what the model takes (``ConfigError``
    naming the field). ``reported(*path)`` is the Models API's verdict for a capability path (``("thinking",
    "types", "adaptive")``, ``("effort", "xhigh")``), None where it reports nothing; the table decides
    those. A model in neither passes (the API itself will answer)."""
    from distill_lab.errors import ConfigError

    f = facts(cfg.model)

    def takes(path: tuple[str, ...], table: bool | None) -> bool | None:
        r = reported(*path)
        return r if r is not None else table

    mode, eff = cfg.thinking_mode, cfg.effort_name
    modes = [m for m in ("enabled", "adaptive") if takes(("thinking", "types", m), m in f.thinking if f else None)]
    if takes(("thinking", "types", mode), mode in f.thinking if f else None) is False:
        raise ConfigError(f"teacher.thinking_mode: {cfg.model} takes thinking type {modes}, not {mode!r}")
    if cfg.output_effort and takes(("effort",), bool(f.efforts) if f else None) is False:
        raise ConfigError(f"teacher.output_effort: {cfg.model} takes no output_config.effort; set it false")
    levels = [e for e in ALL_EFFORTS if takes(("effort", e), e in f.efforts if f else None)]
    if cfg.output_effort and takes(("effort", eff), eff in f.efforts if f else None) is False:
        raise ConfigError(f"teacher.effort: {cfg.model} takes effort {levels}, not {eff!r}")
    limit = max_output or (f.max_output if f else None)
    if limit and cfg.max_tokens > limit:
        raise ConfigError(f"teacher.max_tokens: {cfg.max_tokens} is above {cfg.model}'s limit of {limit}")


# List prices, USD per million tokens: (input, output, cache write (5 min), cache read). The models the
# lab's teacher configs name carry the same prices there (conf/teacher/*.yaml ``prices``; a test checks
# both agree); Opus 4.6 and Haiku 4.5 from the pricing page (read 2026-11). Used to PROJECT what a run's
# rows would have cost from a paid teacher (``report.projected_price_model``); a model not listed is not
# guessed at.
LIST_PRICES: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-5-5": (4.0, 20.0, 5.0, 0.2),
    "claude-opus-4-7": (5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-6": (5.0, 25.0, 6.25, 0.5),
    "claude-opus-4-5": (5.0, 25.0, 6.25, 0.5),
    "claude-sonnet-4-6": (3.0, 15.0, 3.75, 0.3),
    "claude-haiku-4-5": (1.0, 5.0, 1.25, 0.1),
}


def list_prices(model: str) -> tuple[float, float, float, float] | None:
    """``LIST_PRICES`` of ``model`` (a dated snapshot id maps to its alias); None when not listed."""
    if model in LIST_PRICES:
        return LIST_PRICES[model]
    m = _DATED.match(model)
    return LIST_PRICES.get(m.group(1)) if m else None
