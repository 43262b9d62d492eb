"""``distill-lab <stage> [hydra overrides]`` (contract).

Each stage is a Hydra app with its own entry point, ``python -m distill_lab.stages.<stage>``, over the
configs shipped in the package (``distill_lab/conf``): overrides, ``-m`` sweeps, ``--cfg job`` to print
the composed config, ``--help`` for the groups. The config is validated into typed dataclasses before
any work starts. This command only puts Hydra's flags before the overrides and replaces itself with the
stage's entry point, so Lightning's extra ranks and Slurm jobs re-run that module with the same arguments.
"""

from __future__ import annotations

import os
import sys

USAGE = """usage: distill-lab <stage> [hydra overrides] [-m]

stages:
  generate   prompts of a recipe -> teacher -> dataset (HF dataset + JSONL mirror)
  train      dataset -> student fine-tuned with LoRA/QLoRA/full (adapter, merged model)
  rl         train run's adapter + dataset prompts -> GRPO with the families' verifiers as rewards
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    from distill_lab.stages.names import STAGE_PACKAGES

    stage, rest = argv[0], argv[1:]
    if stage not in STAGE_PACKAGES:
        print(f"distill-lab: unknown stage {stage!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    from distill_lab.app import split_hydra_args

    flags, overrides = split_hydra_args(rest)
    module = f"distill_lab.stages.{STAGE_PACKAGES[stage]}"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *flags, *overrides])
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
