"""Shared fixtures: composing configs the way the CLI does, and an isolated student cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from distill_lab.app import compose_config
from distill_lab.config import Config

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


_MEASURED: list[str] = []


@pytest.fixture
def measured(request):
    """``measured("figures")``: a test's measurement, printed in the session's terminal summary whatever the
    outcome (a passing test's own output is not shown with -q; CI's log should still carry the figures)."""
    return lambda text: _MEASURED.append(f"{request.node.nodeid}: {text}")


def pytest_terminal_summary(terminalreporter):
    if _MEASURED:
        terminalreporter.section("measured by the tests")
        for line in _MEASURED:
            terminalreporter.write_line(line)


@pytest.fixture
def make_config():
    """``make_config(["student=tiny", ...], stage="train") -> Config``."""
    return compose_config


__all__ = ["Config", "compose_config", "REPO"]
