"""Errors shared by every layer."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value is out of range or inconsistent. The message names the field."""


def check(ok: bool, key: str, msg: str) -> None:
    """Raise ``ConfigError("<key>: <msg>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {msg}")
