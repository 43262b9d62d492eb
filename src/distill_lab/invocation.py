"""The command line that re-runs a stage, for its manifest.

``distill-lab <stage> ...`` runs the stage's module with Hydra (which may add ``hydra.run.dir=...``), so
the manifest's ``command`` is rebuilt from the job's own overrides: under ``-m`` that is the one job's values
(``teacher.effort=high``, not ``teacher.effort=low,high``), quoted so that a shell runs it as written.
"""

from __future__ import annotations

import shlex
import sys


def command_line() -> str:
    """``distill-lab <stage> <overrides>`` for the running Hydra job; outside Hydra, the process's argv."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        task = list(hc.overrides.task)
    except (ImportError, ValueError):
        return shlex.join(["distill-lab", *sys.argv[1:]])
    # the entry config is stages/<stage> (the stage as typed on the command line); older layouts set stage=
    name = str(hc.job.config_name or "")
    stage = name.rsplit("/", 1)[-1] if name.startswith("stages/") else None
    stage = next((o.split("=", 1)[1] for o in task if o.startswith("stage=")), stage)
    rest = [o for o in task if not o.startswith(("stage=", "hydra.job.name="))]
    return shlex.join(["distill-lab", *([stage] if stage else []), *rest])
