"""Every option of every group composes and validates; bad values stop the run naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.app import conf_path
from distill_lab.config import Config
from distill_lab.errors import ConfigError
from distill_lab.vocab import Effort

from .conftest import compose_config

GROUPS = ["teacher", "student", "recipe", "optimizer", "hardware", "logger", "launcher", "eval",
          "experiment", "debug", "dose"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_path() / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes_and_validates(group, option):
    cfg = compose_config([f"{group}={option}"])
    assert isinstance(cfg, Config)
    if group in ("teacher", "student", "recipe", "optimizer", "hardware", "logger"):
        # the option's own values reached the typed config (not the schema defaults)
        node = getattr(cfg, group)
        name_key = {"teacher": "provider", "student": "name", "recipe": "name", "optimizer": "name",
                    "hardware": "accelerator", "logger": "name"}[group]
        text = (conf_path() / group / f"{option}.yaml").read_text()
        assert f"{name_key}: {getattr(node, name_key)}" in text


def test_every_group_has_options():
    for g in GROUPS:
        assert _options(g), f"conf/{g}/ has no options"


def test_defaults_are_the_embedded_demo_path():
    cfg = compose_config()
    assert cfg.teacher.provider == "oracle" and cfg.recipe.name == "arithmetic"
    assert cfg.student.name == "smollm2_135m" and cfg.hardware.accelerator == "cpu"
    assert cfg.teacher.effort is Effort.medium


@pytest.mark.parametrize("override,field", [
    ("optimizer.lr=-1", "optimizer.lr"),
    ("student.lora.r=0", "student.lora.r"),
    ("train.batch_size=0", "train.batch_size"),
    ("recipe.size=0", "recipe.size"),
    ("eval.top_p=1.5", "eval.top_p"),
    ("hardware.strategy=fsdp", "hardware.strategy"),
    ("teacher.effort=xhigh", "teacher.effort"),  # a valid effort name the oracle does not offer
])
def test_out_of_range_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as e:
        compose_config([override])
    assert str(e.value).startswith(field + ":"), str(e.value)


@pytest.mark.parametrize("override,needle", [
    ("teacher.effort=hgih", "teacher.effort"),
    ("train.batchsize=3", "train.batchsize"),
    ("train.batch_size=abc", "train.batch_size"),
    ("optimizer.lr=fast", "optimizer.lr"),
])
def test_misspelt_keys_and_wrong_types_fail_at_composition(override, needle):
    with pytest.raises(Exception) as e:  # Hydra wraps OmegaConf's error; the message names the key
        compose_config([override])
    assert needle in str(e.value)


def _cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("distill-lab")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_help_lists_stages(tmp_path):
    out = _cli(["--help"], tmp_path)
    assert out.returncode == 0
    for stage in ("generate", "train", "eval", "report", "pipeline"):
        assert f"  {stage} " in out.stdout


def test_cli_unknown_stage_fails(tmp_path):
    out = _cli(["distil"], tmp_path)
    assert out.returncode == 2 and "unknown stage 'distil'" in out.stderr


@pytest.mark.parametrize("override,field", [("optimizer.lr=-1", "optimizer.lr"),
                                            ("teacher.effort=hgih", "teacher.effort"),
                                            ("student.lora.r=0", "student.lora.r")])
def test_cli_bad_config_stops_before_any_work(tmp_path, override, field):
    out = _cli(["generate", "student=tiny", override, f"run_dir={tmp_path / 'run'}"], tmp_path)
    assert out.returncode != 0
    assert field in out.stderr
    assert not (tmp_path / "run").exists(), "a stage ran although its config was invalid"


def test_cli_stage_writes_manifest_without_secrets(tmp_path):
    secret = "sk-ant-test-0123456789abcdef"
    out = _cli(["generate", "student=tiny", "recipe.size=6", "recipe.test_size=2", "recipe.ood_size=2",
                f"run_dir={tmp_path / 'run'}"], tmp_path, env={"ANTHROPIC_API_KEY": secret})
    assert out.returncode == 0, out.stderr[-2000:]
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["stage"] == "generate"
    assert m["config"]["recipe"]["size"] == 6 and m["config"]["teacher"]["effort"] == "medium"
    assert m["artifacts"]["dataset"] == str(tmp_path / "run" / "dataset")
    assert m["versions"]["torch"] and m["timings_s"]["total"] > 0
    assert set(m["git"]) == {"commit", "dirty"}
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret not in f.read_bytes().decode(errors="ignore"), f"secret leaked into {f}"


@pytest.mark.slow  # CLI subprocesses of ~10-20 s on 2 cores (make test-slow runs it)
def test_cli_multirun_sweeps_locally(tmp_path):
    out = _cli(["generate", "-m", "student=tiny", "recipe.size=4", "recipe.test_size=1", "recipe.ood_size=1",
                "teacher.effort=low,high", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    efforts = sorted(json.loads((tmp_path / "sweep" / str(i) / "manifest.json").read_text())
                     ["config"]["teacher"]["effort"] for i in (0, 1))
    assert efforts == ["high", "low"]


def test_cli_missing_api_key_is_a_clean_error_before_any_request(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    exe = Path(sys.executable).with_name("distill-lab")
    out = subprocess.run([str(exe), "generate", "teacher=anthropic", "student=tiny", f"run_dir={tmp_path / 'run'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2
    assert "ANTHROPIC_API_KEY" in out.stderr and "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("rows.jsonl"))


@pytest.mark.parametrize("split,ok", [("train", True), ("test", False), ("ood", False)])
def test_rl_on_the_evaluated_prompts_is_refused(split, ok):
    """The pipeline evaluates after rl: rewarding the student on eval's own prompts would leak them."""
    ov = ["student=tiny", "rl.enabled=true", f"rl.split={split}"]
    if ok:
        assert compose_config(ov, stage="pipeline").rl.split == split
    else:
        with pytest.raises(ConfigError, match=rf"rl\.split: '{split}' is one of eval\.splits"):
            compose_config(ov, stage="pipeline")


@pytest.mark.parametrize("ov,stage,field", [
    (["report.check_design=true", "report.vote_runs=[a,b]"], "report", "report.vote_runs"),
    (["report.sweep_dir=x", "report.eval_dirs=[e]"], "report", "report.sweep_dir"),
    (["report.publish_file=spec.json", "report.sweep_dir=x"], "report", "report.sweep_dir"),
    (["report.sweep_dir=x"], "pipeline", "report.sweep_dir"),
])
def test_report_modes_are_one_at_a_time(ov, stage, field):
    """report/run.py does one thing a run: two modes at once (one of them silently ignored) are refused, and
    the pipeline's own report cannot be turned into another mode after training."""
    with pytest.raises(ConfigError, match=rf"^{field}"):
        compose_config(["student=tiny", *ov], stage=stage)
