"""The optimizer table: every CPU-capable optimizer builds from the config and descends; unknown names are
rejected naming the field."""

from __future__ import annotations

import pytest
import torch

from distill_lab.errors import ConfigError
from distill_lab.stages.train.config import OptimizerConfig
from distill_lab.stages.train.optimizers import OPTIMIZERS, build_optimizer

CPU_OPTIMIZERS = list(OPTIMIZERS)  # bitsandbytes' AdamW8bit runs on CPU too


@pytest.mark.parametrize("name", CPU_OPTIMIZERS)
def test_optimizer_descends_on_a_quadratic(name):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 8))
    target = torch.randn(16, 8)
    opt = build_optimizer([w], OptimizerConfig(name=name, lr=1e-2), fsdp=False)
    first = None
    for _ in range(50):
        loss = ((w - target) ** 2).mean()
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(((w - target) ** 2).mean()) < 0.8 * first


def test_unknown_optimizer_is_rejected_naming_the_field():
    with pytest.raises(ConfigError, match=r"optimizer\.name: unknown optimizer 'sgdd'; known: adamw"):
        OptimizerConfig(name="sgdd")


def test_adamw_takes_the_configured_hyperparameters():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer([w], OptimizerConfig(name="adamw", lr=3e-4, weight_decay=0.1, betas=[0.8, 0.9]), fsdp=True)
    g = opt.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"], g["foreach"]) == (3e-4, 0.1, (0.8, 0.9), False)


def test_adafactor_keeps_factored_second_moments():
    w = torch.nn.Parameter(torch.randn(64, 32))
    opt = build_optimizer([w], OptimizerConfig(name="adafactor", lr=1e-2), fsdp=False)
    (w ** 2).sum().backward()
    opt.step()
    state = opt.state[w]
    assert tuple(state["row_var"].shape) == (64, 1) and tuple(state["col_var"].shape) == (1, 32)
    assert sum(v.numel() for v in state.values() if torch.is_tensor(v) and v.dim()) == 64 + 32  # not 2 x 64 x 32
