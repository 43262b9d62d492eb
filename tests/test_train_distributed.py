"""Multi-process training on CPU (FSDP2 over gloo) and a real kill -9 + resume=auto, through the CLI.

Slow: each case starts fresh Python processes (two ranks for FSDP2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.train_support import losses, make_dataset, step_log, train

CLI = [str(Path(sys.executable).with_name("distill-lab")), "train"]


def cli_train(dataset: Path, run_dir: Path, *overrides: str, wait: bool = True) -> subprocess.Popen:
    cmd = [*CLI, "student=tiny", f"train.dataset_dir={dataset}", f"run_dir={run_dir}",
           "optimizer.warmup_steps=0", *overrides]
    log = open(run_dir.parent / f"{run_dir.name}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    if wait:
        rc = proc.wait(timeout=600)
        assert rc == 0, (run_dir.parent / f"{run_dir.name}.log").read_text()[-4000:]
    return proc


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("dist_data"), size=32)


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["lora", "qlora", "full"])  # full: the chunked head returns weight grads
def test_fsdp2_two_processes_match_one_process(dataset, tmp_path, adapter):
    # one process, 4 rows a step == two FSDP2 ranks, 2 rows each: the same rows, the same loss
    train(dataset, tmp_path / "one", f"student.adapter={adapter}", "train.max_steps=3", "train.batch_size=4")
    cli_train(dataset, tmp_path / "two", f"student.adapter={adapter}", "train.max_steps=3", "train.batch_size=2",
              "hardware=fsdp2_cpu2")
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 3
    assert abs(one[0] - two[0]) < 1e-4, (one, two)  # same batch, same weights
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-3, (one, two)  # and after updates
    saved = "model.safetensors" if adapter == "full" else "adapter_model.safetensors"  # full: an HF checkpoint
    assert (tmp_path / "two" / "adapter" / saved).is_file()
    assert step_log(tmp_path / "two")[0]["supervised_tokens"] == step_log(tmp_path / "one")[0]["supervised_tokens"]


@pytest.mark.slow
def test_kill_9_then_resume_auto_matches_an_uninterrupted_run(dataset, tmp_path):
    args = ("train.max_steps=60", "train.batch_size=4", "optimizer.lr=3e-3", "train.checkpoint_every_n_steps=5",
            "hardware=cpu_fp32")
    ref = train(dataset, tmp_path / "ref", *args)
    run = tmp_path / "killed"
    proc = cli_train(dataset, run, *args, wait=False)
    target = run / "checkpoints" / "step-000010.ckpt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = [r["step"] for r in step_log(run)]
    assert 10 <= max(done) < 60
    cli_train(dataset, run, *args, "train.resume=auto")
    got, want = losses(run), losses(tmp_path / "ref")
    assert len(got) == len(want) == 60
    resumed = json.loads((run / "manifest.json").read_text())["summary"]["resumed_from"]
    off = [i + 1 for i, (a, b) in enumerate(zip(got, want, strict=True)) if abs(a - b) >= 1e-6]
    # every step's loss, not only the last: where a resume goes wrong, the first step that differs says where
    assert not off, f"resumed from {resumed} (killed after step {max(done)}): steps {off[:5]}... differ, " \
                    f"first {got[off[0] - 1]!r} vs {want[off[0] - 1]!r}"
    assert abs(got[-1] - ref.summary["final_loss"]) < 1e-6, (got[-1], ref.summary["final_loss"])
