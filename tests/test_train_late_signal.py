"""A Slurm requeue signal after fit: the train stage finishes instead of dying (stages/train/late_signal.py).

Each case runs in a child process: a SIGUSR1 with the default action would end pytest itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import logging, os, signal, sys
    import torch
    import lightning.pytorch as pl
    from lightning.pytorch.plugins.environments import SLURMEnvironment
    from distill_lab.stages.train.late_signal import finish_on_late_requeue_signal, requeue_signal_restored

    logging.basicConfig(level=logging.INFO)

    class One(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))
        def training_step(self, batch, _):
            return (self.w * batch[0]).sum()
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)
        def train_dataloader(self):
            return torch.utils.data.DataLoader(torch.ones(4, 2), batch_size=2)

    class Probe(pl.Callback):  # which SIGUSR1 handler a fit runs under
        def on_train_start(self, trainer, module):
            print("fit under", type(signal.getsignal(signal.SIGUSR1)).__name__, flush=True)

    def trainer():
        plugins = [SLURMEnvironment()] if sys.argv[1] == "slurm" else []  # "local": no SLURM_* variables either
        return pl.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, plugins=plugins, callbacks=[Probe()])

    with requeue_signal_restored():  # as around each training of the stage (an lr trial)
        first = trainer()
        first.fit(One())
        if sys.argv[2] == "fixed":
            sig = finish_on_late_requeue_signal(first)
            print("handles", sig.name if sig else None, flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)
        print("saved the adapter after the signal", flush=True)
    trainer().fit(One())  # the next trial: Lightning's requeue handler again, not the after-fit one
""")

SLURM_ENV = {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
             "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "7", "SLURM_NODELIST": "localhost"}


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if args[0] == "slurm":
        env |= SLURM_ENV
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_a_requeue_signal_after_fit_is_logged_and_the_stage_finishes():
    # Lightning alone: after fit SIGUSR1 has its default action again and the process dies
    bare = _run("slurm", "bare")
    assert bare.returncode == -signal.SIGUSR1, (bare.returncode, bare.stderr[-2000:])
    assert "saved the adapter" not in bare.stdout

    fixed = _run("slurm", "fixed")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "handles SIGUSR1" in fixed.stdout and "saved the adapter after the signal" in fixed.stdout
    assert "SIGUSR1 arrived after training finished (step 2); not requeueing" in fixed.stderr
    # both fits ran under Lightning's handler: the after-fit one was put back when the first training ended
    assert fixed.stdout.count("fit under _HandlersCompose") == 2, fixed.stdout


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_without_slurm_requeue_the_signal_keeps_its_default_action():
    plain = _run("local", "fixed")
    assert "handles None" in plain.stdout
    assert plain.returncode == -signal.SIGUSR1
