"""A Slurm requeue signal that arrives after training has finished.

Slurm sends SIGUSR1 as a warning before the time limit (`--signal=USR1@120` in slurm/train.sbatch and
launcher=slurm). During `trainer.fit`, Lightning's SLURMEnvironment handles it: it saves an hpc checkpoint
and requeues the job. When fit returns, Lightning puts back the default action for SIGUSR1, which is to
terminate the process. A warning that lands while the adapter is being saved would then kill the task.
The job would fail without a requeue, and without its manifest, even though every step was trained.

The time limit is still the lead time away, and saving an adapter takes seconds. So after fit the stage
logs the signal and finishes. A job that does run out of time still has its step checkpoints:
`train.resume=auto` continues from the last one and only exports.

The handler lasts until that training ends (`requeue_signal_restored` around each one): Lightning
installs its requeue handler only where no handler is installed, so the next fit in this process (the
next trial of `train.lr_grid`) must start with the handler the stage started with.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.pytorch.plugins.environments import SLURMEnvironment

log = logging.getLogger(__name__)


def finish_on_late_requeue_signal(trainer) -> signal.Signals | None:
    """Install the after-fit handler when Lightning owned a requeue signal during fit.

    Returns the signal it now handles, or None when no Slurm auto-requeue was active."""
    env = trainer._accelerator_connector.cluster_environment
    if not (isinstance(env, SLURMEnvironment) and env.auto_requeue):
        return None
    sig = signal.Signals(env.requeue_signal or signal.SIGUSR1)

    def _log_and_go_on(signum, _frame) -> None:
        log.warning("train: %s arrived after training finished (step %d); not requeueing: saving the "
                    "adapter and the manifest now, ahead of the time limit", signal.Signals(signum).name,
                    trainer.global_step)

    signal.signal(sig, _log_and_go_on)
    return sig


@contextmanager
def requeue_signal_restored() -> Iterator[None]:
    """Around one training: afterwards SIGUSR1 has the handler it had before (the default, in a stage)."""
    sig = getattr(signal, "SIGUSR1", None)
    previous = signal.getsignal(sig) if sig is not None else None
    try:
        yield
    finally:
        if sig is not None and previous is not None:
            signal.signal(sig, previous)
