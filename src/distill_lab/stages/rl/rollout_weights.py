"""Which weights the rl stage's rollouts run on (``rl.merge_for_rollouts``), chosen once per run.

With a peft student every rollout step through an unmerged LoRA adapter costs two extra GEMMs per
adapted linear (A and B: 21 matmuls a layer a step instead of 7 on SmolLM2), which was 63% of rollout
time on CPU (benchmarks/README.md, "RL rollouts vs llama.cpp"). So, as TRL itself does before it syncs
weights to vLLM, the active adapter is merged into the base weights (peft's ``merge_adapter``) around
each HF ``generate`` call and unmerged (``unmerge_adapter``) before TRL computes log-probs and the loss,
which therefore run on the unmerged adapter exactly as without the merge.

``W + BA - BA`` is not ``W`` bit for bit, and in bf16 the round trip would lose up to an ulp of the base
weights every step. The base weights of the adapted layers are therefore snapshotted before the merge
and copied back after the unmerge: the training state after a rollout is exactly the one before it. The
cost is one copy of those weights (held only while generating) and two memcpys a step.

The choice, recorded in the run's summary as ``rollout_weights``:
- ``merged``: a peft student, ``rl.merge_for_rollouts=true`` (default), HF ``generate``;
- ``adapter``: a peft student, ``rl.merge_for_rollouts=false`` (the adapter runs unmerged);
- ``full``: a full checkpoint: no adapter, nothing to merge;
- ``vllm-sync``: ``rl.vllm`` set: TRL merges the adapter itself when it pushes weights to vLLM.
A QLoRA student with ``rl.merge_for_rollouts=true`` is a config error (``check``): merging into a 4-bit
base rounds the adapter away, and the stage does not fall back to the unmerged path on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from distill_lab.errors import ConfigError

if TYPE_CHECKING:
    from distill_lab.config import Config

CHOICES = ("merged", "adapter", "full", "vllm-sync")


def check(cfg: Config) -> None:
    """Refuse a merge that cannot be exact before any model loads."""
    if cfg.rl.merge_for_rollouts and cfg.student.adapter == "qlora" and cfg.rl.vllm is None:
        raise ConfigError("rl.merge_for_rollouts: a QLoRA student's base is 4-bit, merging the adapter into it "
                          "for rollouts would round the adapter away; set rl.merge_for_rollouts=false")


def is_peft(model: Any) -> bool:
    return callable(getattr(model, "merge_adapter", None)) and callable(getattr(model, "unmerge_adapter", None))


def choose(cfg: Config, model: Any) -> str:
    """The rollout weights of this run (one of ``CHOICES``)."""
    if not is_peft(model):
        return "full"
    if cfg.rl.vllm is not None:
        return "vllm-sync"
    return "merged" if cfg.rl.merge_for_rollouts else "adapter"


def _tuner_layers(model: Any) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextmanager
def merged_adapter(model: Any) -> Iterator[Any]:
    """The peft ``model`` with its active adapter merged into the base weights inside the block; on exit
    unmerged and the base weights restored bit for bit from a snapshot (even if the block raised)."""
    import torch

    snapshot = []
    with torch.no_grad():
        for layer in _tuner_layers(model):
            base = layer.get_base_layer()
            for name in ("weight", "bias"):
                p = getattr(base, name, None)
                if isinstance(p, torch.Tensor):
                    snapshot.append((p, p.detach().clone()))
    try:
        with torch.no_grad():
            model.merge_adapter()
        yield model
    finally:
        with torch.no_grad():
            model.unmerge_adapter()
            for p, saved in snapshot:
                p.data.copy_(saved)


def apply(cfg: Config, trainer: Any) -> str:
    """Choose the rollout weights for ``trainer`` (TRL's ``GRPOTrainer``) and, for ``merged``, wrap its
    generation step (``_generate_single_turn``, where TRL 1.16 calls HF ``generate``) in
    ``merged_adapter``. Returns the choice."""
    choice = choose(cfg, trainer.model)
    if choice == "merged":
        inner = trainer._generate_single_turn
        model = trainer.model

        def generate_merged(*a: Any, **k: Any):
            with merged_adapter(model):
                return inner(*a, **k)

        trainer._generate_single_turn = generate_merged
    return choice
