"""``hardware`` -> Lightning Trainer arguments (accelerator, devices, strategy, precision)."""

from __future__ import annotations

import logging
from typing import Any

from distill_lab.stages.train.config import HardwareConfig

log = logging.getLogger(__name__)


def effective_precision(hw: HardwareConfig, hidden_size: int | None = None) -> str:
    """The precision that runs (``backends/precision.py``): ``auto`` resolved for this machine and a model
    ``hidden_size`` wide, and bf16 on a CPU without native bf16 replaced by 32-true, with a warning."""
    from distill_lab.backends import precision as prec
    from distill_lab.backends.select import device_of

    device, flags, cap = device_of(hw.accelerator), prec.cpu_flags(), prec.onednn_isa_cap()
    precision, warning = prec.decide(hw.precision, device, flags, hidden_size, cap)
    if warning:
        log.warning(warning)
    elif hw.precision == "auto" and device == "cpu":
        log.info("hardware.precision=auto: %s (native bf16: %s%s; model hidden size %s, bf16 from %d)", precision,
                 prec.native_bf16(flags, cap), f", ONEDNN_MAX_CPU_ISA={cap}" if cap else "", hidden_size,
                 prec.CPU_BF16_MIN_HIDDEN)
    return precision


def trainer_kwargs(hw: HardwareConfig, precision: str | None = None) -> dict[str, Any]:
    """``precision``: the one that runs (``effective_precision``, computed once by the stage)."""
    precision = precision or effective_precision(hw)
    if precision == "16-mixed":
        raise ValueError("hardware.precision: 16-mixed needs a grad scaler, which the trainer does not use; "
                         "use bf16-mixed or bf16-true")
    kw: dict[str, Any] = {"accelerator": hw.accelerator, "devices": hw.devices, "num_nodes": hw.num_nodes,
                          "precision": precision}
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
