"""The Hydra app behind every stage entry point.

``python -m distill_lab.stages.<stage> [overrides]`` (and ``distill-lab <stage> ...``, which runs it)
composes ``conf/stages/<stage>.yaml`` from the configs shipped in this package (``pkg://distill_lab.conf``),
validates it into the typed ``Config`` before any work, runs the stage and writes its manifest.
Lightning's extra ranks and Slurm jobs re-run the same module with the same arguments.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONF_MODULE = "distill_lab.conf"


def stage_config_name(stage: str) -> str:
    return f"stages/{stage}"


def compose_config(overrides: list[str] | None = None, stage: str = "pipeline", dict_config: bool = False):
    """Compose a stage's config exactly as its entry point does (for tests, notebooks, benchmarks)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from distill_lab.config import register_configs, validate

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        dcfg = compose(stage_config_name(stage), overrides=list(overrides or []))
    return dcfg if dict_config else validate(dcfg)


def conf_path() -> Path:
    """The folder of the shipped configs (read-only use: listing options)."""
    from importlib import resources

    return Path(str(resources.files(CONF_MODULE)))


def stage_main(stage: str) -> Callable[[], Any]:
    """The Hydra main function of ``stage``: ``stage_main("train")()`` parses ``sys.argv``."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from distill_lab.config import register_configs, validate
    from distill_lab.errors import ConfigError
    from distill_lab.stages.common import StageStopped, run_stage

    register_configs()

    @hydra.main(config_path="conf", config_name=stage_config_name(stage), version_base="1.3")
    def task(dcfg: DictConfig):
        try:
            cfg = validate(dcfg)
        except ConfigError as e:
            print(f"distill-lab {stage}: invalid config: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        if cfg.skip_completed is None:  # resume by default inside -m sweeps (stages/resume.py)
            from dataclasses import replace

            from hydra.types import RunMode

            cfg = replace(cfg, skip_completed=HydraConfig.get().mode == RunMode.MULTIRUN)
        if cfg.print_config:
            from omegaconf import OmegaConf
            print(OmegaConf.to_yaml(dcfg, resolve=True))
        run_dir = Path(cfg.run_dir or HydraConfig.get().runtime.output_dir)
        try:
            result = run_stage(stage, cfg, run_dir)
        except (ConfigError, StageStopped) as e:  # expected stops: say why, without a traceback
            print(f"distill-lab {stage}: {type(e).__name__}: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        return result.objective

    return task
