"""Experiment loggers from ``cfg.logger``: W&B (online or offline), CSV, or none.

Two entry points:

- ``build_logger(cfg, stage, run_dir)`` -> a Lightning logger (``WandbLogger`` / ``CSVLogger``) or
  ``None``, for the trainer.
- ``open_run(cfg, stage, run_dir)`` -> a ``StageLogger`` for stages without a Trainer (eval,
  report, generate): ``log_metrics``, ``log_table``, ``log_image``, ``log_artifact``, ``finish``.
  With ``logger=none`` its methods return at once.

Every W&B run gets: project/entity/tags from the config, ``job_type`` = the stage, ``group`` =
``logger.group`` or, under ``-m``, one name per sweep derived from the sweep directory (so every job
of a sweep, local or Slurm, lands in one group), the resolved config with secrets redacted, and a
run id derived from the run directory, so a requeued Slurm job resumes the same W&B run.
``WANDB_MODE`` in the environment wins over ``logger.mode``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.manifest import config_dict, redact

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ naming
def sweep_dir() -> Path | None:
    """The Hydra sweep directory when this process runs a job of a ``-m`` sweep, else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        return Path(hc.sweep.dir)
    except (ImportError, ValueError, AttributeError):
        return None


def group_for_sweep(path: Path) -> str:
    """A W&B group name for a sweep directory: its last three path parts, e.g.
    ``multirun/pipeline/2026-11-25/14-26-38`` -> ``pipeline-2026-11-25-14-26-38``."""
    parts = [p for p in Path(path).resolve().parts if p not in ("/", "")]
    if parts and parts[0] == "multirun":
        parts = parts[1:]
    name = "-".join(parts[-3:]) or "sweep"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)[:120]


def resolve_group(cfg: Config) -> str | None:
    """``logger.group``, else ``$DISTILL_LAB_GROUP``, else the sweep's group under ``-m``, else None."""
    if cfg.logger.group:
        return cfg.logger.group
    if os.environ.get("DISTILL_LAB_GROUP"):
        return os.environ["DISTILL_LAB_GROUP"]
    sd = sweep_dir()
    return group_for_sweep(sd) if sd is not None else None


def run_id(run_dir: Path, stage: str) -> str:
    """Stable W&B run id of (run dir, stage): a requeued job writes to the same run."""
    digest = hashlib.sha1(f"{Path(run_dir).resolve()}|{stage}".encode()).hexdigest()
    return digest[:16]


def public_config(cfg: Config) -> dict[str, Any]:
    """The resolved config as a plain dict with secret keys and secret values redacted."""
    return redact(config_dict(cfg))


def wandb_mode(cfg: Config) -> str:
    return os.environ.get("WANDB_MODE") or cfg.logger.mode


def _wandb_init_kwargs(cfg: Config, stage: str, run_dir: Path, group: str | None = None) -> dict[str, Any]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return {
        "project": cfg.logger.project,
        "entity": cfg.logger.entity,
        "group": group or resolve_group(cfg),
        "job_type": stage,
        "tags": list(cfg.logger.tags),
        "config": public_config(cfg),
        "dir": str(run_dir),
        "id": run_id(run_dir, stage),
        "name": f"{stage}-{run_dir.name}",
        "resume": "allow",
        "mode": wandb_mode(cfg),
    }


# ------------------------------------------------------------------------------- trainer logger
def build_logger(cfg: Config, stage: str, run_dir: Path):
    """A Lightning logger for ``cfg.logger.name`` (``wandb`` | ``csv``), or None for ``none``."""
    name = cfg.logger.name
    if name == "none":
        return None
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="logs", version="")
    if name == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        kw = _wandb_init_kwargs(cfg, stage, run_dir)
        save_dir = kw.pop("dir")
        return WandbLogger(save_dir=save_dir, **kw)
    raise ValueError(f"logger.name: unknown logger {name!r}; expected none, wandb or csv")


# ----------------------------------------------------------------------------- stage logger
class StageLogger:
    """Metrics, tables, images and artifacts of one stage run, to W&B or a local JSONL file.

    ``logger=none`` -> every call returns at once; ``logger=csv`` -> ``<run_dir>/logs/events.jsonl``;
    ``logger=wandb`` -> one W&B run (``job_type`` = stage). Use as a context manager.
    """

    def __init__(self, cfg: Config, stage: str, run_dir: Path, group: str | None = None):
        self.cfg, self.stage, self.run_dir = cfg, stage, Path(run_dir)
        self.kind = cfg.logger.name
        self.run = None  # the wandb Run when kind == "wandb"
        self._events: Path | None = None
        if self.kind == "wandb":
            import wandb

            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(**_wandb_init_kwargs(cfg, stage, self.run_dir, group),
                                  settings=wandb.Settings(save_code=False, console="off"))
        elif self.kind == "csv":
            self._events = self.run_dir / "logs" / "events.jsonl"
            self._events.parent.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def _event(self, **data: Any) -> None:
        assert self._events is not None
        with self._events.open("a") as f:
            f.write(json.dumps(redact(data), default=str) + "\n")

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Scalars, e.g. ``{"eval/test/accuracy": 0.9}``."""
        if self.run is not None:
            self.run.log(dict(metrics), step=step)
            for k, v in metrics.items():  # last values also as the summary (offline runs keep it)
                self.run.summary[k] = v
        elif self._events is not None:
            self._event(kind="metrics", step=step, metrics=metrics)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table (eval samples, a report's summary table)."""
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(columns=list(columns), data=[list(r) for r in rows])})
        elif self._events is not None:
            self._event(kind="table", key=key, columns=columns, rows=rows)

    def log_image(self, key: str, path: str | Path, caption: str | None = None) -> None:
        """A plot saved on disk (PNG)."""
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(path), caption=caption)})
        elif self._events is not None:
            self._event(kind="image", key=key, path=str(path), caption=caption)

    def log_artifact(self, path: str | Path, name: str, type: str, metadata: dict | None = None) -> None:
        """A file or folder as a W&B artifact (dataset card, report, adapter)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"log_artifact({name!r}): {path} does not exist")
        if self.run is not None:
            import wandb

            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
            art = wandb.Artifact(safe, type=type, metadata=redact(metadata or {}))
            if path.is_dir():
                art.add_dir(str(path))
            else:
                art.add_file(str(path))
            self.run.log_artifact(art)
        elif self._events is not None:
            self._event(kind="artifact", name=name, type=type, path=str(path), metadata=metadata or {})

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
            settle_wandb()

    def __enter__(self) -> StageLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def settle_wandb() -> None:
    """Return only once W&B has closed the record logs of the runs finished in this process.

    ``Run.finish()`` tells the W&B service process that the run is over and returns; the service closes
    (and so flushes) the run's ``.wandb`` file afterwards, on its own time. A reader that opens the file
    right after ``finish()`` can find it nearly empty (no run record, no history) when the machine is
    busy. ``wandb.teardown()`` waits for the service process to exit, which closes every file it wrote.
    It is only called when no run is active in this process (a run still logging keeps its service).
    """
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is not None:
        return
    wandb.teardown()


def open_run(cfg: Config, stage: str, run_dir: Path, group: str | None = None) -> StageLogger:
    """A ``StageLogger`` for one stage run (``with open_run(cfg, "eval", run_dir) as wl: ...``); ``group``
    overrides the W&B group (the sweep report joins the group of the sweep it reports on)."""
    return StageLogger(cfg, stage, run_dir, group)
