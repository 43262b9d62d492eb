"""Which stages requeue the job on Slurm's warning signal (stages/slurm_requeue.py). The signal and
the requeue themselves run against a real Slurm in tests/test_slurm.py (the rl case)."""

from __future__ import annotations

import signal

import pytest

from distill_lab.stages import slurm_requeue
from distill_lab.stages.slurm_requeue import requeue_on_slurm_signal

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")

JOB = {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "distill-lab", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0"}


@pytest.fixture
def in_a_job(monkeypatch):
    for k in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(k, raising=False)
    for k, v in JOB.items():
        monkeypatch.setenv(k, v)
    return monkeypatch


@pytest.mark.parametrize("stage", ["generate", "rl", "eval", "report"])
def test_a_stage_lightning_does_not_run_requeues_while_it_runs(in_a_job, stage):
    before = signal.getsignal(signal.SIGUSR1)
    with requeue_on_slurm_signal(stage) as job:
        assert job == "7"
        assert signal.getsignal(signal.SIGUSR1) not in (before, signal.SIG_DFL)
    assert signal.getsignal(signal.SIGUSR1) is before  # put back when the stage ends


@pytest.mark.parametrize("stage", ["train", "pipeline"])
def test_train_is_left_to_lightning_and_pipeline_to_its_stages(in_a_job, stage):
    before = signal.getsignal(signal.SIGUSR1)
    with requeue_on_slurm_signal(stage) as job:
        assert job is None and signal.getsignal(signal.SIGUSR1) is before


def test_an_array_task_is_requeued_by_its_array_id(in_a_job):
    in_a_job.setenv("SLURM_ARRAY_JOB_ID", "12")
    in_a_job.setenv("SLURM_ARRAY_TASK_ID", "3")
    with requeue_on_slurm_signal("eval") as job:
        assert job == "12_3"


@pytest.mark.parametrize("env", [{}, {"SLURM_JOB_NAME": "bash"}])  # not a job; an interactive salloc shell
def test_outside_a_batch_job_nothing_is_installed(monkeypatch, env):
    for k in list(JOB) + ["SLURM_ARRAY_JOB_ID"]:
        monkeypatch.delenv(k, raising=False)
    if env:
        for k, v in {**JOB, **env}.items():
            monkeypatch.setenv(k, v)
    before = signal.getsignal(signal.SIGUSR1)
    with requeue_on_slurm_signal("generate") as job:
        assert job is None and signal.getsignal(signal.SIGUSR1) is before


def test_only_rank_0_asks_slurm(in_a_job, monkeypatch):
    calls = []
    monkeypatch.setattr(slurm_requeue.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    in_a_job.setenv("SLURM_PROCID", "1")
    slurm_requeue._requeue("rl", "7", signal.SIGUSR1)
    assert calls == []
    in_a_job.setenv("SLURM_PROCID", "0")
    slurm_requeue._requeue("rl", "7", signal.SIGUSR1)
    assert calls == [["scontrol", "requeue", "7"]]
