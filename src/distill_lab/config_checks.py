"""Config checks beyond one field's range: the model table, keys Hydra let through, the launcher.

Called from ``config.py`` (``TeacherConfig.__post_init__``, ``validate``) and the CLI; each raises
``ConfigError`` naming the key.
"""

from __future__ import annotations


def check_anthropic_teacher(cfg) -> None:
    """An anthropic teacher's settings against the model table (thinking type, effort, max_tokens, betas)."""
    from distill_lab.teachers.anthropic_models import check_teacher

    check_teacher(cfg)
