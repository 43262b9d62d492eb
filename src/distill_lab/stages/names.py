"""The stage names as typed on the command line, and the package under ``distill_lab.stages`` each one
runs. Its own module, below both the root config (which checks ``stage``) and ``stages/common.py`` (which
runs a stage on that config), so neither imports the other for them."""

from __future__ import annotations

# stage name (as typed on the command line) -> its package under distill_lab.stages
STAGE_PACKAGES = {"generate": "generate", "train": "train", "eval": "evaluate", "report": "report",
                  "pipeline": "pipeline", "rl": "rl"}
STAGES = tuple(STAGE_PACKAGES)
