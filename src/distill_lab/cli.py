"""``distill-lab <stage> [hydra overrides]`` (contract).

Each stage is a Hydra app over ``conf/config.yaml``: overrides, ``-m`` sweeps, ``--cfg job`` to print
the composed config, ``--help`` for the groups. The config is validated into typed dataclasses before
any work starts.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

USAGE = """usage: distill-lab <stage> [hydra overrides] [-m]

stages:
  generate   prompts of a recipe -> teacher -> dataset (HF dataset + JSONL mirror)
  train      dataset -> student fine-tuned with LoRA/QLoRA/full (adapter, merged model)
  eval       student (base and distilled) on held-out prompts -> metrics.json
  report     eval results (or a sweep) -> report.md, report.json, plots
  pipeline   generate -> train -> eval -> report in one run directory

examples:
  distill-lab pipeline                                  # the embedded default (oracle -> SmolLM2-135M)
  distill-lab pipeline student=tiny debug=fast          # seconds
  distill-lab generate teacher=anthropic teacher.effort=high recipe.size=250
  distill-lab train train.dataset_dir=outputs/generate/.../dataset student=qwen3_4b hardware=gpu1
  distill-lab train -m optimizer.lr=1e-4,3e-4 seed=0,1,2 launcher=slurm
  distill-lab <stage> --cfg job --resolve               # print the resolved config
  distill-lab <stage> --help                            # config groups and their options
"""


def conf_dir() -> Path:
    """``conf/`` of the checkout this package runs from, or ``$DISTILL_LAB_CONF``."""
    env = os.environ.get("DISTILL_LAB_CONF")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "conf"
    if not (path / "config.yaml").is_file():
        raise SystemExit(f"distill-lab: no config.yaml in {path}; set DISTILL_LAB_CONF to the conf/ folder")
    return path


_STATE = {"task_started": False}


def _app(stage: str):
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from distill_lab.config import ConfigError, register_configs, validate
    from distill_lab.exit_codes import EXIT_CONFIG, EXIT_INTERRUPTED, StageStop
    from distill_lab.stage import run_stage

    register_configs()

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def task(dcfg: DictConfig):
        _STATE["task_started"] = True
        try:
            cfg = validate(dcfg)
        except ConfigError as e:
            print(f"distill-lab {stage}: invalid config: {e}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG) from None
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

    return task


_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}
_INFO_CHOICES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def _split_hydra_args(args: list[str]) -> tuple[list[str], list[str]]:
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    stage, rest = argv[0], argv[1:]
    from distill_lab.config import STAGES

    if stage not in STAGES:
        print(f"distill-lab: unknown stage {stage!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    logging.getLogger("distill_lab").setLevel(logging.INFO)
    flags, overrides = _split_hydra_args(rest)
    run_dirs = [o.split("=", 1)[1] for o in overrides if o.startswith("run_dir=")]
    multirun = any(f in ("-m", "--multirun") for f in flags)
    if run_dirs and not multirun and not any(o.startswith(("hydra.run.dir=", "++hydra.run.dir=")) for o in overrides):
        # Hydra's own output (.hydra/, the job log) goes into run_dir too, not into ./outputs/<stage>/...
        overrides.append(f"hydra.run.dir={run_dirs[-1]}")
    sys.argv = [f"distill-lab-{stage}", *flags, *overrides, f"stage={stage}", f"hydra.job.name={stage}"]
    from distill_lab.exit_codes import EXIT_CONFIG

    _STATE["task_started"] = False
    if not any(f in ("--help", "-h", "--hydra-help", "--info", "-i") for f in flags):
        # validate before Hydra acts: it creates the run dir (.hydra/, the job log) before the stage starts,
        # prints (--cfg) or launches jobs (-m) without calling it at all
        from distill_lab.config import ConfigError
        from distill_lab.config_checks import precheck_cli

        try:
            precheck_cli(stage, flags, overrides)
        except ConfigError as e:
            print(f"distill-lab {stage}: invalid config: {e}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        _app(stage)()
    except SystemExit as e:
        # Hydra exits 1 on an override or composition error (unknown key or value) before the stage
        # starts: that is a config error like any other (exit 2); exits from the stage pass through
        if e.code == 1 and not _STATE["task_started"]:
            return EXIT_CONFIG
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
