"""``hardware`` -> Lightning Trainer arguments (accelerator, devices, strategy, precision)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from distill_lab.stages.train.config import HardwareConfig

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX). Without it, torch emulates bf16
    and a bf16-autocast SmolLM2 step was measured 10-20x slower than fp32 (AVX2-only EPYC VM)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: trust the configured precision
    return "avx512_bf16" in flags or "amx_bf16" in flags


def effective_precision(hw: HardwareConfig) -> str:
    """``hardware.precision``, except bf16 on a CPU without native bf16, which falls back to 32-true."""
    if hw.accelerator == "cpu" and hw.precision.startswith("bf16") and not cpu_has_native_bf16():
        log.warning("hardware.precision=%s: this CPU has no native bf16 (no avx512_bf16/amx_bf16 flag); "
                    "training in 32-true instead (bf16 would be emulated, many times slower)", hw.precision)
        return "32-true"
    return hw.precision


def trainer_kwargs(hw: HardwareConfig) -> dict[str, Any]:
    if hw.precision == "16-mixed":
        raise ValueError("hardware.precision: 16-mixed needs a grad scaler, which the trainer does not use; "
                         "use bf16-mixed or bf16-true")
    kw: dict[str, Any] = {"accelerator": hw.accelerator, "devices": hw.devices, "num_nodes": hw.num_nodes,
                          "precision": effective_precision(hw)}
    if hw.strategy == "fsdp2":
        from distill_lab.stages.train.fsdp_checkpoint import TrainableModelParallelStrategy

        # FSDP2 via fully_shard per decoder layer (SFTModule.configure_model); runs on CPU with gloo too;
        # its checkpoints hold the trainable state only (stages/train/fsdp_checkpoint.py)
        kw["strategy"] = TrainableModelParallelStrategy(data_parallel_size=hw.devices * hw.num_nodes, tensor_parallel_size=1)
        if kw["precision"] == "bf16-true":
            kw["precision"] = "32-true"  # FSDP2's MixedPrecisionPolicy casts (see configure_model)
    elif hw.strategy == "ddp" or hw.devices * hw.num_nodes > 1:  # auto on several devices: DDP (see
        # config.check_training_policy: a QLoRA student fits one GPU; DDP keeps its 4-bit base whole)
        from lightning.pytorch.strategies import DDPStrategy

        kw["strategy"] = DDPStrategy(process_group_backend="gloo" if hw.accelerator == "cpu" else None,
                                     find_unused_parameters=False)
    else:
        kw["strategy"] = "auto"
    return kw
