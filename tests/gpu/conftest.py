"""The GPU suite's report: every test adds what it measured; the session writes one JSON file
(``$DISTILL_LAB_GPU_REPORT``, else ``$OUT/gpu_report.json`` where the device tool sets ``OUT``, else
``outputs/gpu_report.json``), also when a check fails."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.gpu.support import DEVICE, ON_GPU, SMOKE

_REPORT: dict = {"device": DEVICE, "smoke": SMOKE, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "results": {}}


def _report_path() -> Path:
    if os.environ.get("DISTILL_LAB_GPU_REPORT"):
        return Path(os.environ["DISTILL_LAB_GPU_REPORT"])
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_report.json"
    return Path("outputs") / "gpu_report.json"


@pytest.fixture(scope="session")
def report():
    t0 = time.perf_counter()
    yield _REPORT["results"]
    _REPORT["wall_s"] = round(time.perf_counter() - t0, 1)
    if ON_GPU or SMOKE:
        path = _report_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_REPORT, indent=2, default=str))


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _REPORT.setdefault("outcomes", {})[report.nodeid.split("::", 1)[-1]] = report.outcome
