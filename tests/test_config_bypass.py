"""Config that cannot be bypassed (issue 16 item 9): ``+key=value`` for a key no schema field takes, ``--cfg
job`` and ``-m`` before the range checks, and out-of-range launcher settings: all rejected naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.config_checks import check_launcher
from distill_lab.errors import ConfigError
from distill_lab.exit_codes import EXIT_CONFIG
from tests.conftest import compose_config


@pytest.mark.parametrize("override,msg", [
    ("+recipe.sise=10", "recipe.sise: unknown key (not a field of RecipeConfig); did you mean recipe.size?"),
    ("+optimizer.lrr=1e-4", "optimizer.lrr: unknown key (not a field of OptimizerConfig); did you mean optimizer.lr?"),
    ("+student.lora.rr=4", "student.lora.rr: unknown key"),
    ("+generate.max_cost=3", "generate.max_cost: unknown key"),
])
def test_added_keys_that_no_field_takes_are_rejected(override, msg):
    with pytest.raises(ConfigError) as e:
        compose_config([override])
    assert str(e.value).startswith(msg), str(e.value)


def test_dict_fields_still_take_new_keys():
    cfg = compose_config(["+teacher.effort_budgets.extra=3000", "recipe=capabilities"])
    assert cfg.teacher.effort_budgets["extra"] == 3000


def _hydra_cfg(overrides):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from distill_lab.app import CONF_MODULE, stage_config_name

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose(stage_config_name("train"), overrides=list(overrides), return_hydra_config=True)


def test_launcher_ranges():
    check_launcher(_hydra_cfg(["launcher=slurm"]).hydra)  # the shipped settings pass
    for ov, key in [("hydra.launcher.timeout_min=-5", "hydra.launcher.timeout_min"),
                    ("hydra.launcher.mem_gb=0", "hydra.launcher.mem_gb"),
                    ("hydra.launcher.signal_delay_s=7200", "hydra.launcher.signal_delay_s")]:
        with pytest.raises(ConfigError) as e:
            check_launcher(_hydra_cfg(["launcher=slurm", ov]).hydra)
        assert str(e.value).startswith(key + ":"), str(e.value)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("distill-lab")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


@pytest.mark.parametrize("args,key", [
    (["+recipe.sise=10"], "recipe.sise"),
    (["--cfg", "job", "recipe.size=0"], "recipe.size"),
    (["-m", "launcher=slurm", "hydra.launcher.timeout_min=-5", "recipe.size=4,5"], "hydra.launcher.timeout_min"),
])
def test_cli_rejects_bypasses_naming_the_key(tmp_path, args, key):
    out = _cli(["generate", "student=tiny", *args, f"run_dir={tmp_path / 'run'}",
                f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert out.returncode == EXIT_CONFIG, (out.returncode, out.stdout[-1000:], out.stderr[-2000:])
    assert f"invalid config: {key}:" in out.stderr and "Traceback" not in out.stderr
    assert "recipe:" not in out.stdout  # --cfg printed nothing
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_cli_cfg_job_still_prints_a_valid_config(tmp_path):
    out = _cli(["generate", "student=tiny", "--cfg", "job", "recipe.size=7"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "size: 7" in out.stdout
