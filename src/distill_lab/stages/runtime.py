"""What the stages that run a student in this process for generation share (``eval``, ``rl``): torch's thread
count for the run (``hardware.threads``), whether the run uses the GPU, and the student loaded (base + adapter,
or a full checkpoint) and placed there.

A shared part below the stages, beside ``common.py``: stages never import each other
(``tests/test_architecture.py``), so what two of them do alike lives here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill_lab.config import Config


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block (nothing for None / 0), the former count restored after."""
    import torch

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def on_gpu(cfg: Config) -> bool:
    """The run may use a GPU (``hardware.accelerator`` gpu or auto) and one is there."""
    import torch

    return cfg.hardware.accelerator in ("gpu", "auto") and torch.cuda.is_available()


def place_model(model: Any, cfg: Config) -> Any:
    """The model on the GPU when the run uses one (``on_gpu``), else where it is. A model its loader already
    placed with a device map (QLoRA: bitsandbytes quantises on the GPU at load time) stays there, as
    transformers' Trainer leaves it (``hf_device_map``; a peft wrapper forwards the attribute)."""
    if on_gpu(cfg) and getattr(model, "hf_device_map", None) is None:
        model = model.to("cuda")
    return model


def load_placed_student(cfg: Config, adapter_dir: str | Path | None = None, *,
                        for_training: bool = False, tokenizer: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``cfg.student`` with ``adapter_dir`` (a peft adapter or a full checkpoint; None:
    the base), trainable with ``for_training`` (``students.loader.load_student``), on the GPU when the run
    uses one (``place_model``); ``tokenizer``: its tokenizer already loaded (``students.loader.student_tokenizer``)."""
    from distill_lab.students.loader import load_student

    model, tokenizer = load_student(cfg.student, adapter_dir=adapter_dir, for_training=for_training,
                                    tokenizer=tokenizer)
    return place_model(model, cfg), tokenizer
