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


_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def split_hydra_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's flags (with their values) apart from the overrides: argparse wants overrides together."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            takes_value = a in _VALUE_FLAGS or (a in ("--info", "-i") and i + 1 < len(args)
                                                  and args[i + 1] in _INFO_CHOICES)
            if takes_value and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(a)
        i += 1
    return flags, overrides


def precheck(stage: str, overrides: list[str], multirun: bool = False) -> None:
    """Compose and validate the config before Hydra acts: Hydra creates the run dir before the stage starts,
    and ``--cfg``/``-c`` (prints the config) and ``-m`` (launches jobs, maybe on Slurm) do not call the stage
    first at all. Under ``-m`` the first value of each swept key stands for the sweep (the launcher settings
    are shared). Raises ``ConfigError``, also for a composition error (an unknown key or value) of a single
    run, as one line; under ``-m`` those are left to Hydra's own report (exit 2 as well)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf, open_dict

    from distill_lab.config import register_configs, validate
    from distill_lab.config_checks import check_launcher
    from distill_lab.errors import ConfigError

    single: list[str] = []
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 (a malformed override: Hydra's own message says which)
        return
    for text, ov in zip(overrides, parsed, strict=True):
        if not ov.is_sweep_override():
            single.append(text)
            continue
        try:
            first = next(iter(ov.sweep_string_iterator()))
        except Exception:  # noqa: BLE001 (an interval or other non-discrete sweep: the sweeper draws it)
            continue
        single.append(f"{ov.get_key_element()}={first}")
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
            dcfg = compose(stage_config_name(stage), overrides=single, return_hydra_config=True)
    except Exception as e:  # noqa: BLE001 (an unknown key or value, as Hydra words it)
        if multirun:
            return  # Hydra reports it for the sweep
        text = "\n".join(str(x) for x in (e, e.__cause__) if x is not None)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(
            ("reference_type=", "object_type=", "Set the environment variable HYDRA_FULL_ERROR"))]
        raise ConfigError("; ".join(dict.fromkeys(lines)) or type(e).__name__) from None
    finally:
        GlobalHydra.instance().clear()
    check_launcher(dcfg.get("hydra"))
    with open_dict(dcfg):
        del dcfg["hydra"]
    OmegaConf.set_struct(dcfg, True)
    validate(dcfg)


def stage_main(stage: str) -> Callable[[], Any]:
    """The Hydra main function of ``stage``: ``stage_main("train")()`` parses ``sys.argv``.

    Exit codes and the one line printed for each are ``distill_lab.exit_codes``'. Before Hydra acts, the
    config is validated (``precheck``) and ``run_dir=X`` also sets ``hydra.run.dir=X`` so that Hydra's own
    output (``.hydra/``, the job log) goes there instead of ``./outputs/<stage>/...``.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from distill_lab import console
    from distill_lab.config import register_configs, validate
    from distill_lab.errors import ConfigError
    from distill_lab.exit_codes import EXIT_CONFIG, EXIT_INTERRUPTED, StageStop
    from distill_lab.stages.common import run_stage

    register_configs()
    state: dict[str, Any] = {"started": False, "argv": None}

    @hydra.main(config_path="conf", config_name=stage_config_name(stage), version_base="1.3")
    def task(dcfg: DictConfig):
        state["started"] = True
        console.configure()  # Hydra has set up logging: one handler per logger, third-party noise out
        if state["argv"] is not None:  # Lightning's extra ranks re-run sys.argv: give them the user's own
            sys.argv[:] = state["argv"]
        try:
            cfg = validate(dcfg)
        except ConfigError as e:
            print(f"distill-lab {stage}: invalid config: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
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
        except ConfigError as e:  # a free start-up check refused the config: nothing was sent
            print(f"distill-lab {stage}: invalid config: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
        except StageStop as e:  # expected stops: one line with the cause and the fix, no traceback
            print(f"distill-lab {stage}: {type(e).__name__}: {e}", file=sys.stderr)
            raise SystemExit(e.exit_code) from None
        except KeyboardInterrupt:
            print(f"distill-lab {stage}: interrupted; what was received is saved, re-run the same command to "
                  "resume", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None
        if result.incomplete is not None:
            code, why = result.incomplete
            print(f"distill-lab {stage}: {why}", file=sys.stderr)
            raise SystemExit(code)
        return result.objective

    def main() -> Any:
        console.quiet_warnings()  # before the imports that warn
        flags, overrides = split_hydra_args(sys.argv[1:])
        multirun = any(f in ("-m", "--multirun") for f in flags)
        if not any(f in ("--help", "-h", "--hydra-help", "--info", "-i") for f in flags):
            try:
                precheck(stage, overrides, multirun)
            except ConfigError as e:
                print(f"distill-lab {stage}: invalid config: {e}", file=sys.stderr)
                raise SystemExit(EXIT_CONFIG) from None
        run_dirs = [o.split("=", 1)[1] for o in overrides if o.startswith("run_dir=")]
        if run_dirs and not multirun and not any(o.startswith(("hydra.run.dir=", "++hydra.run.dir="))
                                                 for o in overrides):
            state["argv"] = list(sys.argv)
            sys.argv = [sys.argv[0], *flags, *overrides, f"hydra.run.dir={run_dirs[-1]}"]
        try:
            return task()
        except SystemExit as e:
            # Hydra exits 1 on an override or composition error (an unknown key or value) before the stage
            # starts: a config error like any other
            if e.code == 1 and not state["started"]:
                raise SystemExit(EXIT_CONFIG) from None
            raise

    return main
