"""FSDP2 checkpoints that hold the trainable state only (LoRA weights and their optimizer state).

``SFTModule.on_save_checkpoint`` drops frozen weights from every checkpoint (the base is reloaded from
the student cache). Lightning's ``ModelParallelStrategy`` saves such a filtered distributed checkpoint
as it is, but loads by asking for the model's *whole* state dict, which a filtered checkpoint does not
hold. ``TrainableModelParallelStrategy`` loads only the keys the checkpoint was saved with: the
trainable parameters, then the optimizer state, then Lightning's metadata (step, loops, schedulers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy


def trainable_keys(lightning_module) -> set[str]:
    """State-dict keys (as the LightningModule names them) of the parameters that train."""
    return {f"model.{n}" for n, p in lightning_module.model.named_parameters() if p.requires_grad}


class TrainableModelParallelStrategy(ModelParallelStrategy):
    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(self.broadcast(checkpoint_path))
        if not path.is_dir() or self.lightning_module is None or self.lightning_module.strict_loading:
            return super().load_checkpoint(checkpoint_path, weights_only=weights_only)
        from torch.distributed.checkpoint import load
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        keep = trainable_keys(self.lightning_module)
        model_state = {k: v for k, v in get_model_state_dict(self.model).items() if k in keep}
        load({"state_dict": model_state}, checkpoint_id=path)
        set_model_state_dict(self.model, model_state, options=StateDictOptions(strict=False))
        for idx, optimizer in enumerate(self.optimizers):
            key = f"optimizer_{idx}"
            optim_state = {key: get_optimizer_state_dict(self.model, optimizer)}
            load(optim_state, checkpoint_id=path)
            set_optimizer_state_dict(self.model, optimizer, optim_state_dict=optim_state[key],
                                     options=StateDictOptions(cpu_offload=True))
        from lightning.fabric.strategies.model_parallel import _METADATA_FILENAME

        return torch.load(path / _METADATA_FILENAME, weights_only=weights_only)
