"""The grid a ``-m`` sweep was launched with, so a partial sweep's report names what is still missing.

Hydra's basic sweeper saves the sweep's config as ``<sweep_dir>/multirun.yaml``: the sweep params of
the experiment (``hydra.sweeper.params``) and the command line (``hydra.overrides.task``). Expanding
them with Hydra's own parser and ``BasicSweeper.split_arguments`` gives the jobs in the order Hydra
launches them; each job folder's ``.hydra/overrides.yaml`` holds exactly one of them. A re-run of the
same command rewrites ``multirun.yaml``, so on its own it holds the latest launch only. A study that
launches several commands into one folder (its arms, a seed at a time, two streams at once) would lose the
others' jobs from the grid, so every launch is also recorded, when it starts (``LaunchRecorder``, a Hydra
callback), as ``launches/<hash>.json`` (the sweep params and the command line; the same launch again writes
nothing new): the expected grid is the
union of the recorded launches, in the order they first ran, each job once. A folder without ``launches/``
(a sweep from before it) falls back to ``multirun.yaml``. A launch that should not count (a mistyped
command): delete its file.

Other sweepers (Optuna) sample their jobs: there is no grid to compare against (``expected_grid``
returns None) and only the job folders on disk are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from distill_lab.stages.report.tables import markdown_table

SEED_KEY = "seed"
# settings that change which models an eval measures, never the student or its prompts: a sweep may set
# them in some runs only (the base measured once, ``sweep_stats.share_base``) without splitting a cell
NOT_TREATMENTS = ("eval.include_base",)


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


LAUNCHES = "launches"


def record_launch(sweep_dir: str | Path, sweeper: str, params: dict[str, Any], task: list[str]) -> Path | None:
    """Record one ``-m`` launch into ``sweep_dir`` as ``launches/<hash of params and task>.json`` (a launch
    recorded before writes nothing). Only the basic sweeper's grids are recorded (None otherwise)."""
    if not str(sweeper).endswith("BasicSweeper"):
        return None
    launch = {"params": {str(k): str(v) for k, v in params.items()}, "task": [str(t) for t in task]}
    digest = hashlib.sha256(json.dumps(launch, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(sweep_dir) / LAUNCHES / f"{digest}.json"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    first = datetime.now(timezone.utc).isoformat(timespec="microseconds")  # orders the launches: to the microsecond
    tmp.write_text(json.dumps({**launch, "first_run": first}, indent=1))
    os.replace(tmp, path)  # the same command launched twice at once writes the same grid: either rename wins
    return path


class LaunchRecorder(Callback):
    """A Hydra callback (``hydra.callbacks.record_launch`` in ``conf/config.yaml``): at the start of a ``-m``
    launch, its grid (the sweep params and the launch's command line) into ``launches/`` of its sweep folder."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        hc = config.hydra
        params = hc.sweeper.get("params") or {}
        params = OmegaConf.to_container(params, resolve=False) if not isinstance(params, dict) else params
        record_launch(hc.sweep.dir, str(hc.sweeper.get("_target_", "")), params, list(hc.overrides.task))


def _expand(params: dict[str, Any], task: list[str]) -> list[dict[str, str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [f"{k}={v}" for k, v in params.items()] + [str(t) for t in task]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    return [override_items(job) for batch in batches for job in batch]


def _launch_files(sweep_dir: str | Path) -> list[Path]:
    return sorted((Path(sweep_dir) / LAUNCHES).glob("*.json"))


def _recorded_launches(sweep_dir: Path) -> list[dict[str, str]] | None:
    files = _launch_files(sweep_dir)
    if not files:
        return None
    launches = []
    for f in files:
        try:
            d = json.loads(f.read_text())
            launches.append((str(d.get("first_run", "")), f.name, _expand(d["params"], d["task"])))
        except Exception as e:  # noqa: BLE001 - any unreadable record is reported with the file named
            raise GridError(f"{f}: cannot expand the sweep grid ({type(e).__name__}: {e})") from e
    out: dict[tuple, dict[str, str]] = {}
    for _, _, jobs in sorted(launches):
        for job in jobs:
            out.setdefault(tuple(sorted(job.items())), job)
    return list(out.values())


def expected_grid(sweep_dir: str | Path) -> list[dict[str, str]] | None:
    """The jobs of every launch recorded in ``sweep_dir/launches/`` (module docstring), else of the latest
    launch (``multirun.yaml``), as override dicts in launch order; None without either, or for a sweeper
    other than the basic one."""
    recorded = _recorded_launches(Path(sweep_dir))
    if recorded is not None:
        return recorded
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        return None
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
        return _expand(params, task)
    except Exception as e:  # noqa: BLE001 - any parse failure is reported with the file named
        raise GridError(f"{path}: cannot expand the sweep grid ({type(e).__name__}: {e})") from e


@dataclass
class GridStatus:
    """Which of the expected jobs finished, and per cell (the grid without the seed) which seeds."""

    expected: int
    finished: int
    missing_jobs: list[dict[str, Any]] = field(default_factory=list)  # {"overrides", "status", "job"}
    cells: list[dict[str, Any]] = field(default_factory=list)  # {"cell", "expected_seeds", "finished_seeds"}
    source: str = "multirun.yaml"  # where the grid was read (``grid_source``)

    @property
    def complete(self) -> bool:
        return not self.missing_jobs


def grid_source(sweep_dir: str | Path) -> str:
    """Where ``expected_grid`` reads the grid, in words for the report."""
    n = len(_launch_files(sweep_dir))
    return f"{n} launch{'es' if n != 1 else ''} recorded in {LAUNCHES}/" if n else "multirun.yaml"


def grid_status(grid: list[dict[str, str]], runs: list[Any], source: str = "multirun.yaml") -> GridStatus:
    """Compare the expected jobs with the runs read from disk (``sweep.Run``: ``params``, ``status``,
    ``reason``, ``job``)."""

    def key(d: dict[str, str]) -> tuple:
        return tuple(sorted(d.items()))

    on_disk = {key(r.params): r for r in runs}
    keys = list(dict.fromkeys(k for g in grid for k in g))  # in the order of the command line
    swept = [k for k in keys if k != SEED_KEY and k not in NOT_TREATMENTS and len({g.get(k) for g in grid}) > 1]
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
    return GridStatus(expected=len(grid), finished=finished, missing_jobs=missing, cells=out, source=source)


def missing_markdown(status: GridStatus) -> list[str]:
    """Lines for ``sweep.md``: the missing jobs and the cells short of seeds, each named."""
    if status.complete:
        return [f"All {status.expected} jobs of the sweep grid ({status.source}) finished."]
    lines = [f"**Partial sweep: {status.finished} of {status.expected} jobs of the grid ({status.source}) "
             "finished.** Re-run the same commands to complete it (finished stages are skipped).", ""]
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
