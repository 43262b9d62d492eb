"""The grid a ``-m`` sweep was launched with, so a partial sweep's report names what is still missing.

Hydra's basic sweeper saves the sweep's config as ``<sweep_dir>/multirun.yaml``: the sweep params of
the experiment (``hydra.sweeper.params``) and the command line (``hydra.overrides.task``). Expanding
them with Hydra's own parser and ``BasicSweeper.split_arguments`` gives the jobs in the order Hydra
launches them; each job folder's ``.hydra/overrides.yaml`` holds exactly one of them. A re-run of the
same command rewrites ``multirun.yaml``, so the grid is that of the latest launch; runs of an earlier
launch outside it are still reported (they are on disk), only not counted as expected.

Other sweepers (Optuna) sample their jobs: there is no grid to compare against (``expected_grid``
returns None) and only the job folders on disk are reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill_lab.stages.report.tables import markdown_table

SEED_KEY = "seed"


class GridError(ValueError):
    """multirun.yaml cannot be expanded into a grid; the message names the file."""


def override_items(items: list[str]) -> dict[str, str]:
    """``["+a=1", "stage=x", "hydra.x=y", "seed=0"]`` -> ``{"a": "1", "seed": "0"}``: the job's own keys."""
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key not in ("stage", "hydra.job.name") and not key.startswith("hydra."):
            out[key] = value
    return out


def expected_grid(sweep_dir: str | Path) -> list[dict[str, str]] | None:
    """The jobs of the latest launch into ``sweep_dir`` as override dicts, in launch order (None
    without a ``multirun.yaml`` of Hydra's basic sweeper)."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(path)
        target = str(OmegaConf.select(cfg, "hydra.sweeper._target_", default="") or "")
        if not target.endswith("BasicSweeper"):
            return None
        params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None)
        task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
        params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
        task = OmegaConf.to_container(task, resolve=False) if task is not None else []
        args = [f"{k}={v}" for k, v in params.items()] + [str(t) for t in task]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    except Exception as e:  # noqa: BLE001 - any parse failure is reported with the file named
        raise GridError(f"{path}: cannot expand the sweep grid ({type(e).__name__}: {e})") from e
    return [override_items(job) for batch in batches for job in batch]


@dataclass
class GridStatus:
    """Which of the expected jobs finished, and per cell (the grid without the seed) which seeds."""

    expected: int
    finished: int
    missing_jobs: list[dict[str, Any]] = field(default_factory=list)  # {"overrides", "status", "job"}
    cells: list[dict[str, Any]] = field(default_factory=list)  # {"cell", "expected_seeds", "finished_seeds"}

    @property
    def complete(self) -> bool:
        return not self.missing_jobs


def grid_status(grid: list[dict[str, str]], runs: list[Any]) -> GridStatus:
    """Compare the expected jobs with the runs read from disk (``sweep.Run``: ``params``, ``status``,
    ``reason``, ``job``)."""

    def key(d: dict[str, str]) -> tuple:
        return tuple(sorted(d.items()))

    on_disk = {key(r.params): r for r in runs}
    keys = list(dict.fromkeys(k for g in grid for k in g))  # in the order of the command line
    swept = [k for k in keys if k != SEED_KEY and len({g.get(k) for g in grid}) > 1]
    missing, cells = [], defaultdict(lambda: {"expected_seeds": [], "finished_seeds": []})
    finished = 0
    for g in grid:
        run = on_disk.get(key(g))
        cell = cells[tuple((k, g.get(k)) for k in swept)]
        cell["expected_seeds"].append(g.get(SEED_KEY))
        if run is not None and run.status == "ok":
            finished += 1
            cell["finished_seeds"].append(g.get(SEED_KEY))
            continue
        missing.append({"overrides": g, "job": run.job if run is not None else None,
                        "status": "not started (no job folder)" if run is None else f"incomplete: {run.reason}"})
    out = [{"cell": dict(c), **v} for c, v in cells.items()]
    return GridStatus(expected=len(grid), finished=finished, missing_jobs=missing, cells=out)


def missing_markdown(status: GridStatus) -> list[str]:
    """Lines for ``sweep.md``: the missing jobs and the cells short of seeds, each named."""
    if status.complete:
        return [f"All {status.expected} jobs of the sweep grid (multirun.yaml) finished."]
    lines = [f"**Partial sweep: {status.finished} of {status.expected} jobs of the grid (multirun.yaml) "
             "finished.** Re-run the same command to complete it (finished stages are skipped).", ""]
    short = [c for c in status.cells if len(c["finished_seeds"]) != len(c["expected_seeds"])]
    lines += markdown_table(
        ["cell", "seeds expected", "seeds finished", "missing"],
        ([", ".join(f"{k}={v}" for k, v in c["cell"].items()) or "(the one cell)",
          ", ".join(map(str, c["expected_seeds"])), ", ".join(map(str, c["finished_seeds"])) or "–",
          "seeds " + ", ".join(str(s) for s in c["expected_seeds"] if s not in c["finished_seeds"])]
         for c in short))
    lines += ["", "Missing jobs:", ""]
    for m in status.missing_jobs:
        ov = " ".join(f"{k}={v}" for k, v in m["overrides"].items())
        job = f"job `{m['job']}`: " if m["job"] is not None else ""
        lines.append(f"- {job}`{ov}`: {m['status']}")
    return lines
