"""``experiment=effort_x_size_v2``: the v2 effort study's grid as configured (not run here).

Efforts low/medium/high swept plus the mix arm (a second command into the same sweep folder), two sizes,
four seeds, the equal-rows and equal-tokens dose arms (``conf/dose/``; one sweep folder each), >= 100 held-out prompts per split,
the learning rate chosen per run on a validation slice (``train.lr_grid``), and the evaluation budget
``auto``. Composing the whole experiment needs ``eval.max_new_tokens=auto`` (another branch adds it):
until then the composed checks skip, and the file-level ones run.
"""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from distill_lab.app import conf_path
from distill_lab.stages.generate.effort_mix import parse_mix
from tests.conftest import compose_config


def test_the_grid_as_written():
    exp = OmegaConf.load(conf_path() / "experiment" / "effort_x_size_v2.yaml")
    params = exp.hydra.sweeper.params
    assert params["teacher.effort"].split(",") == ["low", "medium", "high"]
    assert len(str(params["recipe.size"]).split(",")) == 2
    assert str(params["seed"]).split(",") == ["0", "1", "2", "3"]
    assert "dose" not in params  # one sweep folder (and report) per dose arm: dose=equal_tokens on the command line
    assert {"override /dose": "equal_rows"} in OmegaConf.to_container(exp.defaults)
    assert exp.recipe.test_size >= 100 and exp.recipe.ood_size >= 100
    assert len(exp.train.lr_grid) >= 2 and exp.data.val_fraction > 0
    assert exp.eval.max_new_tokens == "auto"


def test_dose_arms_compose():
    rows = compose_config(["student=tiny", "dose=equal_rows"], stage="train").train
    toks = compose_config(["student=tiny", "dose=equal_tokens"], stage="train").train
    assert rows.token_budget is None and rows.max_steps == 80
    assert toks.token_budget == 44000 and toks.token_budget_unit == "supervised" and toks.max_steps >= 400


def _compose(*extra: str):
    try:
        return compose_config(["experiment=effort_x_size_v2", *extra], stage="pipeline")
    except ConfigCompositionException as e:
        if "max_new_tokens" in str(e) and "auto" in str(e):
            pytest.skip("eval.max_new_tokens=auto is not on this branch yet (engineer evidence adds it)")
        raise


def test_the_experiment_and_its_mix_arm_compose():
    cfg = _compose()
    assert cfg.student.name.startswith("smollm2") and cfg.train.lr_grid and cfg.train.token_budget is None
    mix = _compose("dose=equal_tokens", "teacher.effort=high", "recipe.effort_mix=low@0.5+high@0.5")
    assert mix.train.token_budget == 44000 and parse_mix(mix.recipe.effort_mix).label == "mix(low:0.5,high:0.5)"
