"""The GPU suite's own machinery, on CPU: its offline install (tests/gpu/setup.sh, from a wheelhouse
alone, with every route to a package index closed) and its report, rewritten after every test so that a
run cut short still returns what it measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = REPO / "tests" / "gpu" / "setup.sh"
PINS = [line.split()[0] for line in (REPO / "tests" / "gpu" / "wheels.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")]
MODULES = {"bitsandbytes": "bitsandbytes", "hydra-core": "hydra", "omegaconf": "omegaconf",
           "antlr4-python3-runtime": "antlr4"}
NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": ""}


def _stand_in_wheel(folder: Path, requirement: str) -> Path:
    """A pure-Python wheel named as the real one (PEP 427), whose module records which pin it is."""
    name, version = requirement.split("==")
    dist = f"{name.replace('-', '_')}-{version}"
    mod = MODULES[name]
    files = {f"{mod}/__init__.py": f"STAND_IN = {requirement!r}\n",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{p},,\n" for p in [*files, f"{dist}.dist-info/RECORD"])
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return path


def _setup(tmp_path: Path, wheels: Path):
    env = {**os.environ, **NO_NETWORK, "PYTHON": sys.executable, "WHEELS": str(wheels),
           "GPU_SITE": str(tmp_path / "site")}
    return subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=120)


def test_pins_are_the_packages_the_gpu_image_lacks():
    assert sorted(p.split("==")[0] for p in PINS) == sorted(MODULES)
    assert all("==" in p for p in PINS)  # exact versions: what the suite ran with is what it reports


def test_setup_installs_every_pin_from_the_wheelhouse_alone_with_the_network_off(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    for req in PINS:
        _stand_in_wheel(wheels, req)
    proc = _setup(tmp_path, wheels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"installed {len(PINS)} wheels from {wheels}" in proc.stdout
    site = tmp_path / "site"
    for req in PINS:  # each module is the stand-in of its pin, in the folder make test-gpu puts first
        init = site / MODULES[req.split("==")[0]] / "__init__.py"
        assert init.read_text() == f"STAND_IN = {req!r}\n"


@pytest.mark.parametrize("present", [3, 0])
def test_a_missing_wheel_is_one_line_naming_it(tmp_path, present):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    for req in PINS[:present]:
        _stand_in_wheel(wheels, req)
    proc = _setup(tmp_path, wheels)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert "missing wheel" in lines[0] and str(wheels) in lines[0] and "fetch_wheels.sh" in lines[0]
    for req in PINS:
        assert (req in lines[0]) == (req not in PINS[:present]), (req, lines[0])
    assert not (tmp_path / "site").exists()  # nothing half-installed


_CUT_AFTER_FIRST_TEST = '''
import os, signal
import pytest


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    if report.when == "teardown":  # a time limit's kill, right after the first test
        os.kill(os.getpid(), signal.SIGKILL)
'''


_TWO_TESTS = '''
def test_first(report):
    report["first"] = {"measured": 1.5}


def test_second(report):
    report["second"] = {"measured": 2.5}
'''


def test_a_run_cut_after_its_first_test_leaves_a_report_with_that_test(tmp_path):
    """The GPU suite's conftest (loaded as a plugin, over two stand-in tests) with the run killed right
    after the first test: the report holds the first test's measurement and outcome."""
    (tmp_path / "cut_after_first.py").write_text(_CUT_AFTER_FIRST_TEST)
    (tmp_path / "test_two.py").write_text(_TWO_TESTS)
    out = tmp_path / "gpu_report.json"
    env = {**os.environ, "DISTILL_LAB_GPU_SUITE_DEVICE": "cpu", "DISTILL_LAB_GPU_REPORT": str(out),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src"), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.gpu.conftest",
                           "-p", "cut_after_first", "test_two.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]  # killed: no session end
    report = json.loads(out.read_text())
    assert report["finished"] is False and report["smoke"] is True
    assert report["outcomes"] == {"test_first": "passed"} and report["results"] == {"first": {"measured": 1.5}}
    assert not out.with_name(out.name + ".tmp").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / ".whl").is_dir(), reason="no wheelhouse: run tests/gpu/fetch_wheels.sh first")
def test_make_test_gpu_smoke_mode_installs_offline_and_passes(tmp_path):
    """``make test-gpu`` as on the GPU machine (its CPU smoke mode): setup.sh from .whl/ with the network
    closed, then the suite on the CPU with tiny shapes; the report lists every test."""
    site, out = tmp_path / "site", tmp_path / "gpu_report.json"
    env = {**os.environ, **NO_NETWORK, "DISTILL_LAB_GPU_SUITE_DEVICE": "cpu", "DISTILL_LAB_GPU_REPORT": str(out)}
    proc = subprocess.run(["make", "-s", "test-gpu", f"GPU_PYTHON={sys.executable}", f"GPU_SITE={site}",
                           "PYTEST_ARGS=-p no:cacheprovider"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "slowest durations" in proc.stdout  # --durations=0
    report = json.loads(out.read_text())
    assert report["finished"] and report["results"]["environment"]["wheelhouse"] == dict(p.split("==") for p in PINS)
    assert set(report["outcomes"].values()) <= {"passed", "skipped"} and len(report["outcomes"]) >= 9
    shutil.rmtree(site, ignore_errors=True)
