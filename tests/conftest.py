"""Shared fixtures: composing configs the way the CLI does, and an isolated student cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from distill_lab.cli import conf_dir
from distill_lab.config import Config, register_configs, validate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _student_cache(tmp_path_factory):
    """Students built or converted during tests are cached once per test session, not in $HOME."""
    old = os.environ.get("DISTILL_LAB_CACHE")
    os.environ["DISTILL_LAB_CACHE"] = os.environ.get("DISTILL_LAB_TEST_CACHE") or str(
        tmp_path_factory.mktemp("student_cache"))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    yield
    if old is None:
        os.environ.pop("DISTILL_LAB_CACHE", None)
    else:
        os.environ["DISTILL_LAB_CACHE"] = old


def compose_config(overrides: list[str] | None = None, stage: str = "pipeline", dict_config: bool = False):
    """Compose ``conf/config.yaml`` with ``overrides`` as ``distill-lab <stage>`` would; validate it."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        dcfg = compose("config", overrides=[f"stage={stage}", *(overrides or [])])
    return dcfg if dict_config else validate(dcfg)


@pytest.fixture
def make_config():
    """``make_config(["student=tiny", ...], stage="train") -> Config``."""
    return compose_config


__all__ = ["Config", "compose_config", "REPO"]
