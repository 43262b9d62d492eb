"""``stages/runtime.py``: the thread count, GPU choice and student loading + placement that ``eval`` and ``rl``
share (one function, used by both)."""

from __future__ import annotations

import torch

from distill_lab.stages import runtime
from tests.conftest import compose_config


def test_torch_threads_sets_and_restores_the_count():
    before = torch.get_num_threads()
    with runtime.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    try:
        with runtime.torch_threads(None):  # nothing asked: the count stays
            assert torch.get_num_threads() == before
            raise KeyError("x")
    except KeyError:
        pass
    assert torch.get_num_threads() == before


class _Model:
    def __init__(self, device_map=None):
        self.moved_to = None
        self.hf_device_map = device_map

    def to(self, device):
        self.moved_to = device
        return self


def test_place_model_moves_to_the_gpu_only_when_the_run_uses_one(monkeypatch):
    gpu = compose_config(["student=tiny", "hardware=gpu1"], stage="eval")
    cpu = compose_config(["student=tiny", "hardware=cpu"], stage="eval")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not runtime.on_gpu(gpu) and runtime.place_model(_Model(), gpu).moved_to is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.on_gpu(gpu) and not runtime.on_gpu(cpu)
    assert runtime.place_model(_Model(), gpu).moved_to == "cuda"
    assert runtime.place_model(_Model(), cpu).moved_to is None
    # placed by its loader (a QLoRA model quantised on the GPU): left where it is, as transformers' Trainer does
    assert runtime.place_model(_Model({"": 0}), gpu).moved_to is None


def test_eval_and_rl_load_their_student_through_the_shared_function(monkeypatch, tmp_path):
    """The tiny student: ``load_placed_student`` gives rl's trainable model and, from its saved adapter, eval's
    frozen one; both stages' modules call this one function (no loader of their own)."""
    import inspect

    from distill_lab.stages.evaluate import benchmark
    from distill_lab.stages.evaluate import run as eval_run
    from distill_lab.stages.rl import run as rl_run

    cfg = compose_config(["student=tiny", "hardware=cpu"], stage="eval")
    model, tok = runtime.load_placed_student(cfg, for_training=True)  # a new LoRA on the base
    assert any(p.requires_grad for p in model.parameters()) and tok is not None
    model.save_pretrained(str(tmp_path / "adapter"))
    frozen, _ = runtime.load_placed_student(cfg, tmp_path / "adapter")
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training
    for mod in (eval_run, rl_run, benchmark):
        src = inspect.getsource(mod)
        assert "load_placed_student(" in src and "load_student(cfg.student" not in src, mod.__name__
    assert "set_num_threads" not in inspect.getsource(eval_run) + inspect.getsource(rl_run)
