"""Build the teacher ``teacher.provider`` names (the names: ``providers.py``, the one place a new teacher
is registered). Implementations are imported only when built, so that ``teachers/base.py`` and the config
never import a provider's SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from distill_lab.teachers.providers import PROVIDERS, known_provider

__all__ = ["PROVIDERS", "build_teacher", "known_provider", "teacher_class"]

if TYPE_CHECKING:
    from distill_lab.teachers.base import Teacher
    from distill_lab.teachers.config import TeacherConfig


def teacher_class(provider: str) -> type[Teacher]:
    target = PROVIDERS.get(provider, provider)
    module, _, name = target.partition(":")
    if not name:
        raise ValueError(f"teacher.provider: unknown provider {provider!r}; expected one of {list(PROVIDERS)} "
                         "or package.module:ClassName")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"teacher.provider: cannot import {target!r}: {e}") from e


def build_teacher(cfg: TeacherConfig) -> Teacher:
    return teacher_class(cfg.provider)(cfg)
