"""Which class serves each ``teacher.provider``: the one place a new teacher is registered.

``teacher.provider`` is a name below or ``package.module:ClassName`` (a ``Teacher`` subclass of your own,
constructed with the ``TeacherConfig``). Only names here: the config validates ``teacher.provider``
against them, and ``registry.py`` imports the class when a teacher is built, so that neither the config
nor ``teachers/base.py`` imports a provider's SDK (nor the registry that builds them).
"""

from __future__ import annotations

PROVIDERS = {
    "oracle": "distill_lab.teachers.oracle:OracleTeacher",
    "anthropic": "distill_lab.teachers.anthropic:AnthropicTeacher",
    "openai_compat": "distill_lab.teachers.openai_compat:OpenAICompatTeacher",
}


def known_provider(provider: str) -> bool:
    return provider in PROVIDERS or ":" in provider
