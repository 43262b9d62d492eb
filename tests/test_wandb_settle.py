"""Issue 16 item 15: an offline run's ``.wandb`` file is read only after W&B's writer closed it.

The race: ``Run.finish()`` returns once the W&B service has been told the run is over; the service closes
(flushes) the file later. On a busy machine the reader found the file with no run record and no history.
These tests check the synchronisation itself (the writer process is gone when ``finish`` / ``read_run``
return), which holds on a quiet machine too, so they fail on the racy code every time, not by luck.
"""

from __future__ import annotations

import psutil
import pytest

from distill_lab.tracking.loggers import open_run
from distill_lab.tracking.wandb_reader import find_runs, read_run
from tests.conftest import compose_config


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def _wandb_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "wandb" in " ".join(p.cmdline()).lower()]


def _open_files(procs) -> set[str]:
    out = set()
    for p in procs:
        try:
            out |= {f.path for f in p.open_files()}
        except psutil.NoSuchProcess:
            pass
    return out


def test_stage_logger_finish_returns_after_the_file_is_closed(offline, tmp_path):
    cfg = compose_config(["student=tiny", "logger=wandb", "logger.project=settle"], stage="eval")
    with open_run(cfg, "eval", tmp_path / "run") as wl:
        wl.log_metrics({"eval/test/accuracy": 0.5})
        writers = _wandb_children()
        assert writers, "expected the W&B service process while the run is open"
    (path,) = find_runs(tmp_path / "run")
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in writers)
    assert str(path) not in _open_files(writers)
    run = read_run(path)
    assert run.project == "settle" and run.metric("eval/test/accuracy") == [0.5] and run.exit_code == 0


def test_reader_waits_for_a_run_finished_without_the_stage_logger(offline, tmp_path):
    """The train stage finishes Lightning's run itself (``run.finish()``): the reader settles the writer."""
    import wandb

    run = wandb.init(project="settle", dir=str(tmp_path), mode="offline", id="settle1",
                     settings=wandb.Settings(save_code=False, console="off"))
    for i in range(3):
        run.log({"train/loss": 1.0 / (i + 1)})
    run.finish()
    writers = _wandb_children()
    rec = read_run(find_runs(tmp_path)[0])
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in writers)
    assert rec.project == "settle" and rec.metric("train/loss") == pytest.approx([1.0, 0.5, 1 / 3])
