"""Against a real one-node Slurm (slurm/local_cluster.sh): Hydra sweeps through launcher=slurm, a
2-task DDP/FSDP2 job, and SIGUSR1 -> checkpoint -> requeue -> resume with the same final loss.

The tests start the cluster themselves (installing slurm-wlm + munge with apt-get when missing) and
stop it afterwards. They skip only when not root or when Slurm is missing and apt-get is unavailable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill_lab.stages.report.sweep import collect, write_report

from .conftest import REPO

pytestmark = pytest.mark.integration

SCRIPT = REPO / "slurm" / "local_cluster.sh"
TEMPLATE = REPO / "slurm" / "train.sbatch"
BIN = Path(sys.executable).parent / "distill-lab"


def _sh(*cmd: str, timeout: float = 60, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("a local Slurm needs root (slurmd, munged)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("slurm-wlm is not installed and apt-get is unavailable to install it")
    # one test session at a time on this machine's cluster: another session's fixture would stop it
    # (and cancel its jobs) under us. The lock is released when this session ends, even on a crash.
    import fcntl

    lock_path = Path(os.environ.get("SLURM_LOCAL_STATE", "/var/tmp/distill_lab_slurm")) / "tests.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path.open("w")
    deadline = time.time() + 1800
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.time() > deadline:
                pytest.fail(f"another test session held {lock_path} for 30 minutes")
            time.sleep(2)
    # a cluster that was already up (someone's sweep may be running on it) is left running
    was_up = shutil.which("sinfo") is not None and subprocess.run(
        ["bash", str(SCRIPT), "status"], capture_output=True, timeout=60).returncode == 0
    # started with OMP_NUM_THREADS=1 as on many clusters' login shells: the node must still get every CPU
    # (the two-task test below needs two)
    _sh("bash", str(SCRIPT), "start", timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert _sh("sinfo", "-h", "-o", "%t").strip() in ("idle", "mix", "alloc")
        yield "debug"
    finally:
        if not was_up:
            _sh("bash", str(SCRIPT), "stop", timeout=120, check=False)
        lock.close()


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "SLURM_PARTITION": "debug", "DISTILL_LAB_BIN": str(BIN),
            "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_env())
    assert proc.returncode == 0, f"distill-lab {' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("slurm_data")
    _cli("generate", "student=tiny", "recipe.size=48", "recipe.test_size=8", "recipe.ood_size=8",
         f"run_dir={d / 'gen'}", cwd=d)
    return d / "gen" / "dataset"


def test_cluster_runs_a_two_task_step(slurm, tmp_path):
    out = tmp_path / "ranks.out"
    _sh("sbatch", "--wait", "--ntasks=2", f"--output={out}", "--wrap",
        "srun bash -c 'echo rank=$SLURM_PROCID of=$SLURM_NTASKS'", timeout=120)
    assert sorted(out.read_text().split()) == ["of=2", "of=2", "rank=0", "rank=1"]


@pytest.mark.slow  # a Slurm array of 4 jobs: ~20 s
def test_two_by_two_sweep_through_launcher_slurm(slurm, tmp_path):
    """`distill-lab generate -m launcher=slurm` over 2 sizes x 2 seeds: one Slurm array, 4 finished jobs,
    collected by the sweep code."""
    sweep = tmp_path / "multirun" / "generate" / "sw"
    _cli("generate", "-m", "launcher=slurm", "student=tiny", "debug=fast", "recipe.size=8,16", "seed=0,1",
         f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=600)
    submission = next((sweep / ".submitit").glob(".submission_file_*.sh")).read_text()
    assert "#SBATCH --array=0-3%4" in submission and "#SBATCH --signal=USR1@120" in submission
    assert "#SBATCH --ntasks-per-node=1" in submission and "#SBATCH --requeue" in submission
    runs = collect(sweep)
    assert len(runs) == 4
    got = sorted((r.params["recipe.size"], r.params["seed"], r.size, r.seed, r.train_rows) for r in runs)
    assert got == [("16", "0", 16, 0, 16), ("16", "1", 16, 1, 16), ("8", "0", 8, 0, 8), ("8", "1", 8, 1, 8)]
    # each job ran under Slurm (its own array task), not in this process
    for r in runs:
        rows = [json.loads(x) for x in (Path(r.path) / "dataset" / "rows.jsonl").read_text().splitlines()]
        assert sum(x["split"] == "train" for x in rows) == r.size
    assert len({p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name}) == 4


@pytest.mark.slow
def test_pipeline_sweep_on_slurm_is_collected_into_a_report(slurm, tmp_path):
    """effort x size (2 x 2) pipelines as a Slurm array, then `report report.sweep_dir=` over it."""
    sweep = tmp_path / "multirun" / "pipeline" / "sw"
    _cli("pipeline", "-m", "launcher=slurm", "student=tiny", "debug=fast", "teacher.effort=low,high",
         "recipe.size=16,32", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=900)
    res = write_report(sweep, tmp_path / "report")
    assert res["summary"]["finished"] == 4 and res["summary"]["expected_jobs"] == 4
    assert sorted((r["effort"], r["size"]) for r in res["rows"]) == [("high", 16), ("high", 32), ("low", 16),
                                                                       ("low", 32)]
    for row in res["rows"]:
        assert 0.0 <= row["student_test_accuracy"]["mean"] <= 1.0
        assert row["teacher_test_accuracy"]["mean"] == pytest.approx(1.0)  # the oracle is always right
    assert Path(res["artifacts"]["accuracy_plot"]).is_file()


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["summary"]


@pytest.mark.slow
@pytest.mark.parametrize("hardware", ["ddp_cpu2", "fsdp2_cpu2"])
def test_two_task_job_trains_across_slurm_tasks(slurm, dataset, tmp_path, hardware):
    """slurm/train.sbatch with 2 tasks: Lightning takes its ranks from srun; same loss as DDP in-process."""
    run = tmp_path / "run"
    log = tmp_path / "job.out"
    _sh("sbatch", "--wait", "--ntasks-per-node=2", f"--output={log}", f"--chdir={tmp_path}", str(TEMPLATE),
        str(run), "student=tiny", f"train.dataset_dir={dataset}", "train.max_steps=4", "train.batch_size=4",
        f"hardware={hardware}", timeout=900)
    text = log.read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text, text[-3000:]
    s = _summary(run)
    assert s["world_size"] == 2 and s["steps"] == 4
    assert (run / "adapter").is_dir()
    # the same job with 2 processes started by Lightning itself (no Slurm) reaches the same loss
    ref = tmp_path / "ref"
    subprocess.run([str(BIN), "train", f"run_dir={ref}", "student=tiny", f"train.dataset_dir={dataset}",
                    "train.max_steps=4", "train.batch_size=4", f"hardware={hardware}"], check=True,
                   capture_output=True, timeout=900, cwd=tmp_path,
                   env={k: v for k, v in _env().items() if not k.startswith("SLURM_")})
    assert s["final_loss"] == pytest.approx(_summary(ref)["final_loss"], rel=1e-5)


def _job_field(job: str, field: str) -> str:
    out = _sh("scontrol", "show", "job", job, check=False)
    for tok in out.split():
        if tok.startswith(field + "="):
            return tok.split("=", 1)[1]
    return ""


def _task_states(run: Path) -> list[str]:
    """/proc states of the job step's training processes (the srun client excluded): 'T' when stopped."""
    states = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if f"run_dir={run}".encode() in argv and not argv[0].endswith(b"srun"):
                states.append((proc / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue
    return states


@pytest.mark.slow
def test_sigusr1_requeues_and_resumes_to_the_same_final_loss(slurm, dataset, tmp_path):
    run = tmp_path / "run"
    log = tmp_path / "job.out"
    steps = 120
    args = ["student=tiny", f"train.dataset_dir={dataset}", f"train.max_steps={steps}", "train.batch_size=4",
            "train.checkpoint_every_n_steps=3", "hardware=cpu_fp32"]
    job = _sh("sbatch", "--parsable", f"--output={log}", f"--chdir={tmp_path}", str(TEMPLATE), str(run),
              *args).strip()
    deadline = time.time() + 600
    while not (run / "checkpoints" / "step-000003.ckpt").exists():
        assert time.time() < deadline, f"no checkpoint after 600 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    # The task is frozen while the signal is sent, so it lands mid-training however fast this machine
    # trains (a CI machine ran 24 steps in 0.4 s and the signal came after fit).
    _sh("scancel", "--signal=STOP", job)
    while "T" not in _task_states(run):
        assert time.time() < deadline, f"the task was not stopped: {_task_states(run)}\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    assert not (run / "checkpoints" / f"step-{steps:06d}.ckpt").exists() and not (run / "manifest.json").exists(), \
        "training finished before the signal; make it longer"
    _sh("scancel", "--signal=USR1", job)
    _sh("scancel", "--signal=CONT", job)
    while _job_field(job, "Restarts") != "1":
        assert time.time() < deadline, f"not requeued:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    # a requeued job may start again after AuthInfo=cred_expire (10 s in slurm/local_cluster.sh)
    while _job_field(job, "JobState") not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", ""):
        assert time.time() < deadline + 600, f"requeued job did not finish:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    assert _job_field(job, "JobState") in ("COMPLETED", ""), log.read_text()[-3000:]
    text = log.read_text()
    assert "Handling auto-requeue signal" in text and "attempt 2" in text
    s = _summary(run)
    assert s["steps"] == steps and s["resumed_from"] and "checkpoints/step-" in s["resumed_from"]
    assert 0 < s["steps_this_run"] < steps
    assert list(run.glob("hpc_ckpt_*.ckpt")), "Lightning saved no checkpoint at the signal"

    ref = tmp_path / "ref"
    subprocess.run([str(BIN), "train", f"run_dir={ref}", *args], check=True, capture_output=True, timeout=900,
                   cwd=tmp_path, env={k: v for k, v in _env().items() if not k.startswith("SLURM_")})
    assert _summary(ref)["steps_this_run"] == steps
    assert s["final_loss"] == pytest.approx(_summary(ref)["final_loss"], rel=1e-6)


@pytest.mark.slow
def test_sigusr1_during_rl_requeues_and_rl_resumes_from_its_last_checkpoint(slurm, dataset, tmp_path):
    """rl has no Lightning handler: stages/slurm_requeue.py requeues the job on the signal, and the next
    attempt continues from rl's last checkpoint, every step logged once."""
    run = tmp_path / "rl"
    log = tmp_path / "job.out"
    steps = 16
    args = ["student=tiny", "hardware=cpu_fp32", f"rl.dataset_dir={dataset}", f"rl.steps={steps}", "rl.save_steps=1",
            "rl.group_size=2", "rl.prompts_per_step=2", "rl.max_prompts=8", "rl.max_completion_tokens=32",
            "rl.allow_short_completions=true"]
    job = _sh("sbatch", "--parsable", f"--output={log}", f"--chdir={tmp_path}", str(TEMPLATE), str(run), *args,
              env={**_env(), "DISTILL_LAB_STAGE": "rl"}).strip()
    deadline = time.time() + 600
    while not (run / "checkpoints" / "checkpoint-2").is_dir():
        assert time.time() < deadline, f"no rl checkpoint after 600 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    _sh("scancel", "--signal=STOP", job)  # frozen while signalled: the signal lands mid-run on any machine
    while "T" not in _task_states(run):
        assert time.time() < deadline, f"the task was not stopped: {_task_states(run)}\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    assert not (run / "checkpoints" / f"checkpoint-{steps}").exists() and not (run / "manifest.json").exists(), \
        "rl finished before the signal; make it longer"
    _sh("scancel", "--signal=USR1", job)
    _sh("scancel", "--signal=CONT", job)
    while _job_field(job, "Restarts") != "1":
        assert time.time() < deadline, f"not requeued:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    while _job_field(job, "JobState") not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", ""):
        assert time.time() < deadline + 600, f"requeued job did not finish:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    text = log.read_text()
    assert _job_field(job, "JobState") in ("COMPLETED", ""), text[-3000:]
    assert f"rl: SIGUSR1 from Slurm (time limit near, or preemption): requeueing job {job}" in text, text[-3000:]
    assert "attempt 2" in text
    s = _summary(run)
    assert s["resumed_from"] and "checkpoints/checkpoint-" in s["resumed_from"], s["resumed_from"]
    assert 2 <= int(s["resumed_from"].rsplit("-", 1)[1]) < steps
    logged = [json.loads(x)["step"] for x in (run / "rl_log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1)), logged  # no step lost or logged twice across the requeue


@pytest.mark.slow
def test_rerun_of_a_slurm_sweep_skips_finished_jobs_and_redoes_the_rest(slurm, tmp_path):
    """The same `-m launcher=slurm` command twice (sweep_name fixes the folder): the second array's
    task for the finished job returns at once without writing; the job whose manifest is gone (as after a
    kill) runs again."""
    from distill_lab.stages.report.sweep import expected_jobs

    args = ("generate", "-m", "launcher=slurm", "student=tiny", "debug=fast", "seed=0,1", "sweep_name=resumed")
    _cli(*args, cwd=tmp_path, timeout=600)
    sweep = tmp_path / "multirun" / "generate" / "resumed"
    done = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (sweep / "0").rglob("*")
            if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"}
    (sweep / "1" / "manifest.json").unlink()  # job 1 "killed" before its manifest
    _cli(*args, cwd=tmp_path, timeout=600)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in done} == done
    assert json.loads((sweep / "1" / "manifest.json").read_text())["config"]["seed"] == 1
    arrays = {p.name.split("_")[0] for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name}
    assert len(arrays) == 2 and expected_jobs(sweep) == 2  # two submissions of the same two tasks
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_0_log.*"))
    assert "generate already completed in" in logs and "/resumed/0 with this config" in logs
