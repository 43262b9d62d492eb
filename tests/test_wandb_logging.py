"""W&B offline: what the loggers write is read back from the ``.wandb`` record log and asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distill_lab.tracking.loggers import build_logger, group_for_sweep, open_run, run_id
from distill_lab.tracking.wandb_reader import WandbFileError, find_runs, read_run, read_table

from .conftest import compose_config

SECRET = "sk-ant-test-0123456789abcdef-SECRET"


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.delenv("DISTILL_LAB_GROUP", raising=False)


def _no_secret_under(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), f"secret leaked into {p}"


def test_stage_logger_offline_round_trip(offline, tmp_path):
    cfg = compose_config(["student=tiny", "logger=wandb", "logger.tags=[ablation,cpu]",
                          "logger.group=g-effort", f"teacher.system_prompt=key is {SECRET}"], stage="eval")
    png = tmp_path / "plot.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.plot([1, 2], [3, 4])
    plt.savefig(png)
    plt.close()
    card = tmp_path / "card.md"
    card.write_text("# dataset card\n48 rows\n")

    with open_run(cfg, "eval", tmp_path / "run") as wl:
        assert wl.enabled
        wl.log_metrics({"eval/test/accuracy": 0.25, "eval/ood/accuracy": 0.0})
        wl.log_metrics({"eval/test/accuracy": 0.75})
        wl.log_table("eval/samples", ["prompt", "ok"], [["What is 1 + 2?", True], ["What is 5 + 5?", False]])
        wl.log_image("report/accuracy", png)
        wl.log_artifact(card, "dataset-card", "dataset")

    files = find_runs(tmp_path / "run")
    assert len(files) == 1 and files[0].name == f"run-{run_id(tmp_path / 'run', 'eval')}.wandb"
    run = read_run(files[0])
    assert run.project == "distill_lab" and run.group == "g-effort" and run.job_type == "eval"
    assert run.tags == ["ablation", "cpu"]
    assert run.config["student"]["name"] == "tiny" and run.config["stage"] == "eval"
    assert SECRET not in run.config["teacher"]["system_prompt"]
    assert run.metric("eval/test/accuracy") == [0.25, 0.75]
    assert run.summary["eval/test/accuracy"] == 0.75 and run.summary["eval/ood/accuracy"] == 0.0
    table = read_table(run, "eval/samples")
    assert table["columns"] == ["prompt", "ok"] and table["data"][1] == ["What is 5 + 5?", False]
    assert any(f.startswith("media/images/report/accuracy") for f in run.files)
    assert {"name": "dataset-card", "type": "dataset", "files": ["card.md"]} in run.artifacts
    assert run.exit_code == 0
    _no_secret_under(tmp_path / "run")


def test_logger_none_writes_nothing(offline, tmp_path):
    cfg = compose_config(["student=tiny"], stage="eval")
    assert build_logger(cfg, "train", tmp_path) is None
    with open_run(cfg, "eval", tmp_path) as wl:
        assert not wl.enabled
        wl.log_metrics({"a": 1.0})
        wl.log_table("t", ["a"], [[1]])
    assert list(tmp_path.iterdir()) == []


def test_csv_stage_logger_writes_events(offline, tmp_path):
    cfg = compose_config(["student=tiny", "logger.name=csv"], stage="report")
    with open_run(cfg, "report", tmp_path) as wl:
        wl.log_metrics({"x": 2.5}, step=3)
        wl.log_table("tab", ["a", "b"], [[1, SECRET]])
    lines = (tmp_path / "logs" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"x": 2.5' in lines[0] and '"step": 3' in lines[0]
    assert SECRET not in lines[1] and "***" in lines[1]


def test_lightning_wandb_logger_records_training_metrics(offline, tmp_path):
    import lightning as L
    import torch

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.lin(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x = torch.randn(16, 2)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)
    cfg = compose_config(["student=tiny", "logger=wandb", "logger.project=unit"], stage="train")
    logger = build_logger(cfg, "train", tmp_path)
    trainer = L.Trainer(max_steps=6, logger=logger, log_every_n_steps=2, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Tiny(), data)
    logger.experiment.finish()
    run = read_run(find_runs(tmp_path)[0])
    assert run.project == "unit" and run.job_type == "train" and run.group is None
    losses = run.metric("train/loss")
    assert len(losses) == 3 and all(isinstance(v, float) for v in losses)
    assert losses[-1] < losses[0]  # it trained: the logged loss fell
    assert run.metric("trainer/global_step")[-1] == 5
    _no_secret_under(tmp_path)


def test_group_name_of_a_sweep_dir():
    assert group_for_sweep(Path("multirun/pipeline/2026-11-25/14-26-38")) == "pipeline-2026-11-25-14-26-38"
    assert group_for_sweep(Path("/tmp/my sweeps/effort")) == "tmp-my_sweeps-effort"


@pytest.mark.slow  # CLI subprocesses of ~10-20 s on 2 cores (make test-slow runs it)
def test_every_job_of_a_multirun_shares_the_sweep_group(offline, tmp_path):
    """A real Hydra -m sweep (basic launcher) over the shipped configs: each job opens a run; one group for all."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import hydra
        from pathlib import Path
        from hydra.core.hydra_config import HydraConfig
        from distill_lab.config import register_configs, validate
        from distill_lab.tracking.loggers import open_run

        register_configs()

        @hydra.main(config_path="pkg://distill_lab.conf", config_name="config", version_base="1.3")
        def main(dcfg):
            cfg = validate(dcfg)
            with open_run(cfg, "eval", Path(HydraConfig.get().runtime.output_dir)) as wl:
                wl.log_metrics({"seed": float(cfg.seed)})

        main()
    """))
    sweep = tmp_path / "multirun" / "eval" / "sw1"
    proc = subprocess.run([sys.executable, str(script), "-m", "stage=eval", "student=tiny", "logger=wandb",
                           "seed=0,1", f"hydra.sweep.dir={sweep}"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "WANDB_MODE": "offline"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [read_run(p) for p in find_runs(sweep)]
    assert len(runs) == 2
    assert {r.group for r in runs} == {group_for_sweep(sweep)}
    assert sorted(r.summary["seed"] for r in runs) == [0.0, 1.0]
    assert len({r.run_id for r in runs}) == 2


def test_reader_rejects_a_file_that_is_not_a_record_log(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not wandb at all")
    with pytest.raises(WandbFileError, match="run-x.wandb"):
        read_run(bad)


def test_generate_logs_its_counts_and_the_dataset_card(offline, tmp_path):
    from distill_lab.stages.generate.run import run as generate

    cfg = compose_config(["student=tiny", "logger.name=csv", "recipe.size=6", "recipe.test_size=2",
                          "recipe.ood_size=2"], stage="generate")
    generate(cfg, tmp_path)
    events = [json.loads(x) for x in (tmp_path / "logs" / "events.jsonl").read_text().splitlines()]
    metrics = next(e["metrics"] for e in events if e["kind"] == "metrics")
    assert metrics["generate/rows"] == 10 and metrics["generate/rows_train"] == 6
    card = next(e for e in events if e["kind"] == "artifact")
    assert card["name"] == "dataset-card" and card["path"] == str(tmp_path / "dataset" / "README.md")


def test_train_stage_logs_its_step_metrics_to_wandb(offline, tmp_path):
    """The train stage's per-step metrics reach the configured logger every ``log_every_n_steps``."""
    from tests.train_support import make_dataset, step_log, train

    data = make_dataset(tmp_path / "data", size=32)
    run_dir = tmp_path / "run"
    train(data, run_dir, "logger=wandb", "logger.project=unit", "train.max_steps=4", "train.batch_size=4",
          "train.log_every_n_steps=2")
    run = read_run(find_runs(run_dir)[0])
    steps = {r["step"]: r for r in step_log(run_dir) if "loss" in r}
    assert run.metric("train/loss") == pytest.approx([steps[2]["loss"], steps[4]["loss"]], rel=1e-6)
    for key in ("loss_answer", "lr", "grad_norm", "supervised_tokens_per_s", "padding_share", "peak_mem_mb"):
        assert run.metric(f"train/{key}") == pytest.approx([steps[2][key], steps[4][key]], rel=1e-6), key
    _no_secret_under(run_dir)
