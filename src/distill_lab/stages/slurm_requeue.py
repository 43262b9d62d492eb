"""Requeue a Slurm job on its warning signal in the stages Lightning does not run.

Slurm sends SIGUSR1 ahead of the time limit or on preemption (`--signal=USR1@120` in
slurm/train.sbatch and launcher=slurm). In `train`, Lightning's SLURMEnvironment owns that signal: an
hpc checkpoint, then `scontrol requeue`. The other stages had the signal's default action, so the
job died at the warning and was not requeued. Each of them resumes when the same command runs again
in the same run directory: generate from its journal (no row lost or written twice), rl from its
last checkpoint (`rl.save_steps`), eval and report from the start. So on the signal this handler asks
Slurm to requeue the job; Slurm ends this attempt and the next one runs the same command.

Only the process of rank 0 (`SLURM_PROCID` 0) asks, as in Lightning. Train is left to Lightning,
which installs its handler only where none is installed; `pipeline` installs none of its own, as each
stage it runs installs its handler (or leaves train to Lightning).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

NOT_HERE = ("train", "pipeline")  # train: Lightning's handler; pipeline: its stages' handlers
REQUEUE_SIGNAL = getattr(signal, "SIGUSR1", None)  # Lightning's SLURMEnvironment.requeue_signal default


def slurm_job_id() -> str | None:
    """The id `scontrol requeue` takes for this job (an array task: ``<array id>_<task id>``), or None
    when this process is not in a Slurm batch job: no SLURM_NTASKS, or an interactive shell (job name
    ``bash`` or ``interactive``), the rule of Lightning's SLURMEnvironment.detect (which, called off
    Slurm on a machine with srun, warns; so it is not called here)."""
    if "SLURM_NTASKS" not in os.environ or os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array is not None:
        return f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def _requeue(stage: str, job: str, signum: int) -> None:
    if os.environ.get("SLURM_PROCID", "0") != "0":
        return
    log.warning("%s: %s from Slurm (time limit near, or preemption): requeueing job %s; the next attempt "
                "runs the same command and the stage resumes from what it saved", stage,
                signal.Signals(signum).name, job)
    rc = subprocess.call(["scontrol", "requeue", job])
    if rc != 0:
        log.error("%s: `scontrol requeue %s` failed with exit code %d: the job ends at its time limit; "
                  "run the same command again to resume", stage, job, rc)


@contextmanager
def requeue_on_slurm_signal(stage: str) -> Iterator[str | None]:
    """While the stage runs, SIGUSR1 requeues the job. Yields the job id, or None when not installed:
    train and pipeline (``NOT_HERE``), not a Slurm job, not the main thread, or no SIGUSR1 on this platform."""
    job = None
    if stage not in NOT_HERE and REQUEUE_SIGNAL is not None and threading.current_thread() is threading.main_thread():
        job = slurm_job_id()
    if job is None:
        yield None
        return
    previous = signal.signal(REQUEUE_SIGNAL, lambda signum, _frame: _requeue(stage, job, signum))
    try:
        yield job
    finally:
        signal.signal(REQUEUE_SIGNAL, previous)
