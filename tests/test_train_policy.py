"""The multi-GPU and precision policy: FSDP2 + 4-bit refused on GPUs, DDP for several devices, fp32
master weights for full fine-tuning, trainable-only FSDP2 checkpoints (the slow test)."""

from __future__ import annotations

import pytest
import torch

from distill_lab.config import ConfigError
from distill_lab.stages.train.strategy import trainer_kwargs
from distill_lab.students import load_student
from tests.train_support import losses, make_dataset


def test_fsdp2_with_qlora_on_gpus_is_a_config_error_naming_the_fix(make_config):
    for hw in (["hardware=fsdp_8gpu"], ["hardware=fsdp2_cpu2", "hardware.accelerator=auto"]):
        with pytest.raises(ConfigError, match=r"hardware.strategy: fsdp2 with student.adapter=qlora .*#1945.*"
                                              r"hardware.strategy=ddp"):
            make_config(["student=qwen3_4b", *hw], stage="train")
    # the same student with LoRA shards with FSDP2; QLoRA on 8 GPUs goes to DDP
    assert make_config(["student=qwen3_4b", "student.adapter=lora", "hardware=fsdp_8gpu"], stage="train")
    assert make_config(["student=qwen3_4b", "hardware=ddp_8gpu"], stage="train").hardware.strategy == "ddp"
    # on CPU (gloo) FSDP2 + 4-bit stays allowed: test_train_distributed compares it with one process
    assert make_config(["student=tiny", "student.adapter=qlora", "hardware=fsdp2_cpu2"], stage="train")


def test_shipped_experiments_obey_the_policy(make_config):
    cfg = make_config(["experiment=claude_to_qwen3_fsdp"], stage="train")
    assert cfg.student.adapter == "lora" and cfg.hardware.strategy == "fsdp2"
    assert make_config(["experiment=claude_to_qwen3_qlora"], stage="train").student.adapter == "qlora"


def test_several_devices_with_strategy_auto_train_with_ddp(make_config):
    from lightning.pytorch.strategies import DDPStrategy

    hw = make_config(["student=tiny", "hardware=ddp_cpu2", "hardware.strategy=auto"], stage="train").hardware
    assert isinstance(trainer_kwargs(hw)["strategy"], DDPStrategy)
    one = make_config(["student=tiny", "hardware=cpu_fp32"], stage="train").hardware
    assert trainer_kwargs(one)["strategy"] == "auto"


def test_full_fine_tuning_keeps_fp32_master_weights(make_config):
    with pytest.raises(ConfigError, match="hardware.precision: bf16-true with student.adapter=full"):
        make_config(["student=tiny", "student.adapter=full", "hardware=gpu1", "hardware.precision=bf16-true"],
                    stage="train")
    # FSDP2's bf16-true keeps fp32 shards (MixedPrecisionPolicy computes in bf16): allowed
    assert make_config(["student=tiny", "student.adapter=full", "hardware=fsdp2_cpu2",
                        "hardware.precision=bf16-true"], stage="train")
    cfg = make_config(["student=tiny", "student.adapter=full", "student.dtype=bfloat16"], stage="train").student
    model, _ = load_student(cfg, for_training=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the masters
    assert all(p.requires_grad for p in model.parameters())
    frozen, _ = load_student(cfg)  # inference keeps student.dtype
    assert {p.dtype for p in frozen.parameters()} == {torch.bfloat16}


@pytest.mark.slow
def test_fsdp2_checkpoints_hold_only_the_adapter_and_resume_exactly(tmp_path):
    from torch.distributed.checkpoint import FileSystemReader

    from tests.test_train_distributed import cli_train

    dataset = make_dataset(tmp_path, size=32)
    args = ("student.adapter=lora", "train.batch_size=2", "hardware=fsdp2_cpu2", "optimizer.scheduler=constant",
            "optimizer.lr=3e-3", "train.checkpoint_every_n_steps=2")
    cli_train(dataset, tmp_path / "ref", *args, "train.max_steps=4")
    ckpt = tmp_path / "ref" / "checkpoints" / "step-000002.ckpt"
    assert ckpt.is_dir()
    keys = [k for k in FileSystemReader(str(ckpt)).read_metadata().state_dict_metadata if k.startswith("state_dict.")]
    assert keys and all("lora_" in k for k in keys), keys[:5]  # no frozen base weight in the checkpoint
    run = tmp_path / "resumed"
    cli_train(dataset, run, *args, "train.max_steps=2")
    cli_train(dataset, run, *args, "train.max_steps=4", "train.resume=auto")
    ref, got = losses(tmp_path / "ref"), losses(run)
    assert len(got) == 4
    assert max(abs(a - b) for a, b in zip(ref, got, strict=True)) < 1e-5, (ref, got)
