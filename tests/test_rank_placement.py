"""students/loader.py: each rank loads its student onto its own device from the first byte."""

from __future__ import annotations

import pytest
import torch

from distill_lab.students import load_student
from distill_lab.students import loader as loader_mod
from distill_lab.students.loader import local_rank, rank_device


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_gpu_ranks_above_zero_get_their_own_device(rank):
    assert rank_device("gpu", env={"LOCAL_RANK": str(rank)}, cuda_devices=8) == f"cuda:{rank}"
    assert rank_device("auto", env={"LOCAL_RANK": str(rank)}, cuda_devices=8) == f"cuda:{rank}"


def test_rank_sources_and_cpu():
    assert local_rank({}) == 0  # rank 0 before Lightning starts the others
    assert local_rank({"SLURM_LOCALID": "2"}) == 2
    assert local_rank({"LOCAL_RANK": "5", "SLURM_LOCALID": "2"}) == 5  # the launcher's own rank wins
    assert rank_device("gpu", env={}, cuda_devices=2) == "cuda:0"
    assert rank_device("cpu", env={"LOCAL_RANK": "1"}, cuda_devices=8) is None
    assert rank_device("auto", env={"LOCAL_RANK": "1"}, cuda_devices=0) is None


def test_impossible_placements_are_errors():
    with pytest.raises(RuntimeError, match="local rank 4 has no GPU: this process sees 4"):
        rank_device("gpu", env={"LOCAL_RANK": "4"}, cuda_devices=4)
    with pytest.raises(RuntimeError, match="hardware.accelerator=gpu: this process sees no CUDA device"):
        rank_device("gpu", env={}, cuda_devices=0)


def test_load_student_sets_the_device_then_loads_with_a_device_map(monkeypatch, make_config):
    """The CUDA device is set before ``from_pretrained`` (bitsandbytes quantises on the current device),
    and the whole model is mapped to the rank's device; checked by recording the calls, since this
    machine has no GPU."""
    cfg = make_config(["student=tiny"], stage="train").student
    load_student(cfg)  # build the tiny student's cache first
    events: list = []
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained

    def fake_from_pretrained(path, **kwargs):
        events.append(("from_pretrained", kwargs.get("device_map")))
        kwargs["device_map"] = {"": "cpu"}  # no GPU here: load for real, on the CPU
        return real(path, **kwargs)

    monkeypatch.setattr(torch.cuda, "set_device", lambda d: events.append(("set_device", d)))
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_from_pretrained)
    model, _ = loader_mod.load_student(cfg, for_training=True, device="cuda:3")
    assert events == [("set_device", "cuda:3"), ("from_pretrained", {"": "cuda:3"})]
    assert any(p.requires_grad for p in model.parameters())


def test_cpu_device_map_loads_for_real(make_config):
    cfg = make_config(["student=tiny"], stage="train").student
    model, _ = load_student(cfg, device="cpu")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
