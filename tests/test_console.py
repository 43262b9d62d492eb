"""The console (src/distill_lab/console.py): one line per event, third-party noise out unless
DISTILL_LAB_VERBOSE=1, progress as log lines at a steady cadence off a terminal."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from distill_lab import console

REPO = Path(__file__).resolve().parents[1]


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_lines_come_at_a_steady_cadence_first_and_last_always():
    out = io.StringIO()
    log = logging.getLogger("distill_lab.test_console.progress")
    log.propagate, log.level = False, logging.INFO
    handler = logging.StreamHandler(out)
    log.addHandler(handler)
    clock = _Clock()
    try:
        p = console.ProgressLog(log, "train:", 100, "steps", every_s=30.0, clock=clock)
        for step in range(1, 101):
            clock.t = step * 2.0  # a step every 2 s: 200 s in all
            p.set(step, f"loss {1 / step:.3f}")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    done = [int(re.match(r"train: (\d+)/100 steps", ln).group(1)) for ln in lines]
    assert done == [1, 16, 31, 46, 61, 76, 91, 100]  # the first, then one per 30 s, then the last
    assert lines[0].startswith("train: 1/100 steps (1%): loss 1.000; 2.0 s elapsed, 0.50 steps/s, ~")
    assert lines[-1] == "train: 100/100 steps (100%): loss 0.010; 3 min 20 s elapsed, 0.50 steps/s"


def _record(name: str, msg: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_noise_filter_drops_exactly_the_listed_third_party_lines():
    f = console.NoiseFilter()
    tip = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)"
    assert not f.filter(_record("lightning.pytorch.utilities.rank_zero", tip))
    assert not f.filter(_record("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from "
                                "kernels-community: No module named 'kernels'", logging.WARNING))
    # with `kernels` installed (transformers >= 5.25) and the hub offline: its note on each bitsandbytes import
    assert not f.filter(_record("kernels._internals.hf_hub", "Skipping publisher trust check for 'kernels-community/"
                                "quantization-bitsandbytes' because Hugging Face Hub is in offline mode.", logging.WARNING))
    assert f.filter(_record("kernels._internals.hf_hub", "Cannot load kernel 'x': not in the cache", logging.WARNING))
    assert f.filter(_record("lightning.pytorch.utilities.rank_zero", "GPU available: False, used: False"))
    assert f.filter(_record("distill_lab.stages.train", tip))  # only the library's own line is noise
    assert f.filter(_record("lightningx", tip))  # a name prefix, not a string prefix
    assert f.filter(_record("bitsandbytes.nn", "4-bit weights loaded"))


@pytest.fixture
def saved_logging():
    """Every logger's handlers and propagation, restored afterwards."""
    loggers = [logging.root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = [(lg, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for lg, handlers, propagate in saved:
        lg.handlers[:] = handlers
        lg.propagate = propagate
    for name in ("distill_lab_test_lib",):
        logging.getLogger(name).handlers.clear()


def test_one_handler_per_logger_after_tidy(saved_logging, capsys):
    root_handler = logging.StreamHandler(sys.stdout)  # as Hydra's console handler
    root_handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    logging.root.handlers[:] = [root_handler]
    lib = logging.getLogger("distill_lab_test_lib")  # as lightning, datasets: own handler, propagates too
    lib.addHandler(logging.StreamHandler(sys.stderr))
    lib.propagate = True
    own = logging.getLogger("lightning.fabric")  # as transformers: own handler, no propagation
    own.handlers[:] = [logging.StreamHandler(sys.stderr)]
    own.propagate = False
    lib.warning("said once")
    own.warning("kept out of the job log")
    before = capsys.readouterr()
    assert before.err.count("said once") == 1 and before.out.count("said once") == 1  # twice in all
    assert "kept out of the job log" not in before.out
    console.tidy_handlers()
    lib.warning("said once")
    own.warning("now through root")
    after = capsys.readouterr()
    assert after.err == ""
    assert after.out.splitlines() == ["[distill_lab_test_lib] said once", "[lightning.fabric] now through root"]


@pytest.mark.parametrize("env", [{}, {"SLURM_JOB_ID": "7"}, {console.VERBOSE_ENV: "1"}])
def test_noisy_warnings_are_ignored_unless_verbose_and_srun_hint_only_off_slurm(monkeypatch, env):
    for key in ("SLURM_JOB_ID", console.VERBOSE_ENV):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        console.quiet_warnings()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("The `srun` command is available on your system but is not used. HINT: ...", UserWarning,
                      stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    got = [str(w.message).split(" ", 1)[0] for w in seen]
    if env.get(console.VERBOSE_ENV):
        assert got == ["`isinstance(treespec,", "The", "something"]
    elif env.get("SLURM_JOB_ID"):  # inside a Slurm job the srun hint may be right: it stays
        assert got == ["The", "something"]
    else:
        assert got == ["something"]


# ------------------------------------------------------------------------- a stage's console, as run
_NOISE = ("💡", "litlogger", "srun", "LeafSpec", "kernels-community", "is_gradient_checkpointing",
          "Loading weights")


def _message(line: str) -> str:
    """A log line's message, whichever handler printed it (Hydra's format or a library's own)."""
    m = re.match(r"^\[[^\]]+\]\[[^\]]+\]\[\w+\] - (.*)$", line) or re.match(r"^(?:INFO|WARNING|ERROR): (.*)$", line)
    return m.group(1) if m else line


def _train_console(tmp_path: Path, name: str, dataset: Path, verbose: bool) -> str:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")  # Slurm installed on this machine, not used
    (fake / "srun").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != console.VERBOSE_ENV}
    env.update(PATH=f"{fake}{os.pathsep}{env['PATH']}", PYTHONPATH=str(REPO / "src"))
    if verbose:
        env[console.VERBOSE_ENV] = "1"
    log = tmp_path / f"{name}.log"
    with open(log, "w") as out:  # stdout and stderr to a file: no terminal, as under Slurm
        proc = subprocess.run([sys.executable, "-m", "distill_lab.stages.train", "student=tiny", "debug=fast",
                               f"train.dataset_dir={dataset}", f"run_dir={tmp_path / name}"], cwd=tmp_path, env=env,
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


@pytest.mark.slow
def test_a_stage_off_a_terminal_prints_each_event_once_without_noise_and_verbose_brings_it_back(tmp_path):
    from tests.train_support import make_dataset

    dataset = make_dataset(tmp_path)
    quiet = _train_console(tmp_path, "quiet", dataset, verbose=False)
    assert "\r" not in quiet  # no bar redrawn into the file
    messages = [_message(ln) for ln in quiet.splitlines() if ln.strip()]
    repeated = {m for m in messages if messages.count(m) > 1}
    assert not repeated, repeated
    assert not [ln for ln in quiet.splitlines() if any(n in ln for n in _NOISE)], quiet
    assert "GPU available: False, used: False" in messages  # Lightning's own INFO lines stay, once
    assert re.search(r"train: 1/5 steps \(20%\): loss [\d.]+", quiet)  # progress lines: the first step ...
    assert re.search(r"train: 5/5 steps \(100%\): loss [\d.]+.*elapsed", quiet)  # ... and the last
    assert "train finished in" in quiet

    loud = _train_console(tmp_path, "loud", dataset, verbose=True)
    for noise in ("litlogger", "srun", "LeafSpec", "kernels-community"):
        assert noise in loud, noise


@pytest.mark.parametrize("loud", [False, True])
def test_per_request_http_lines_are_kept_to_warnings_unless_verbose(monkeypatch, loud):
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    if loud:
        monkeypatch.setenv(console.VERBOSE_ENV, "1")
    saved = {n: logging.getLogger(n).level for n in console.QUIET_LOGGERS}
    try:
        for n in console.QUIET_LOGGERS:
            logging.getLogger(n).setLevel(logging.NOTSET)
        console.quiet_loggers()
        levels = {logging.getLogger(n).level for n in console.QUIET_LOGGERS}
        assert levels == ({logging.NOTSET} if loud else {logging.WARNING})
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
