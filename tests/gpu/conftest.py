"""The GPU suite's report: every test adds what it measured, and the JSON file (``$DISTILL_LAB_GPU_REPORT``,
else ``$OUT/gpu_report.json`` where the device tool sets ``OUT``, else ``outputs/gpu_report.json``) is
rewritten after every test, so that a run cut at its time limit still returns what the finished tests
measured (and each test's outcome, also when a check fails)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.gpu.support import DEVICE, ON_GPU, SMOKE

_REPORT: dict = {"device": DEVICE, "smoke": SMOKE, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "results": {}, "outcomes": {}, "durations_s": {}}
_T0 = time.perf_counter()


def _report_path() -> Path:
    if os.environ.get("DISTILL_LAB_GPU_REPORT"):
        return Path(os.environ["DISTILL_LAB_GPU_REPORT"])
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu_report.json"
    return Path("outputs") / "gpu_report.json"


def _write(finished: bool) -> None:
    """The whole report, replaced in one rename (a kill mid-write leaves the previous one)."""
    if not (ON_GPU or SMOKE):
        return
    _REPORT["wall_s"] = round(time.perf_counter() - _T0, 1)
    _REPORT["finished"] = finished
    path = _report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_REPORT, indent=2, default=str))
    os.replace(tmp, path)


@pytest.fixture(scope="session")
def report():
    return _REPORT["results"]


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::", 1)[-1]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _REPORT["outcomes"][name] = report.outcome
    if report.when in ("setup", "call"):
        _REPORT["durations_s"][name] = round(_REPORT["durations_s"].get(name, 0.0) + report.duration, 2)
    if report.when == "teardown":  # the test and its function-scoped fixtures are done
        _write(finished=False)


def pytest_sessionfinish(session, exitstatus):
    if _REPORT["outcomes"]:  # a session that ran GPU tests (not `make test` on a CUDA host, which deselects them)
        _write(finished=True)
