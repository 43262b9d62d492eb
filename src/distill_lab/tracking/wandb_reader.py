"""Read an offline W&B run (``wandb/offline-run-*/run-<id>.wandb``) back into plain Python.

The ``.wandb`` file is a LevelDB-style record log: a 7-byte header (``:W&B``, a 2-byte magic and a
version byte), then 32 KiB blocks of chunks. Each chunk has a 7-byte header — crc32 (``<I``),
length (``<H``), type (``B``: 1 full, 2 first, 3 middle, 4 last) — and the payloads of a
first..last sequence join into one protobuf ``wandb_internal_pb2.Record``. This is how tests assert
what a run logged without a W&B server, and how ``sweep`` can read metrics from runs that logged only
to W&B.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
FILE_HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class WandbFileError(ValueError):
    """The file is not a readable W&B record log; the message names the file and offset."""


@dataclass
class OfflineRun:
    """What an offline run recorded."""

    path: Path
    run_id: str | None = None
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    job_type: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per wandb.log call
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)  # name, type, files
    files: list[str] = field(default_factory=list)  # files saved with the run (media, ...)
    exit_code: int | None = None

    def metric(self, key: str) -> list[Any]:
        """Every value logged under ``key``, in order."""
        return [h[key] for h in self.history if key in h]

    @property
    def run_dir(self) -> Path:
        return self.path.parent


def _payloads(data: bytes, path: Path):
    """Yield the payload of every record in a record log."""
    if len(data) < FILE_HEADER or data[:4] != b":W&B":
        raise WandbFileError(f"{path}: not a W&B record log (missing ':W&B' header)")
    pos = FILE_HEADER
    pending: bytearray | None = None
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - (pos % BLOCK)
        if left_in_block < CHUNK_HEADER:  # trailer padding at the end of a block
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        start = pos + CHUNK_HEADER
        end = start + length
        if end > len(data):
            break  # a run still writing: the last record is incomplete
        chunk = data[start:end]
        pos = end
        if kind == FULL:
            yield bytes(chunk)
        elif kind == FIRST:
            pending = bytearray(chunk)
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            pending += chunk
            yield bytes(pending)
            pending = None
        elif kind == 0 and length == 0:  # zero padding
            pos += left_in_block - CHUNK_HEADER
        else:
            raise WandbFileError(f"{path}: bad chunk type {kind} at byte {pos - length - CHUNK_HEADER}")


def _json(value_json: str) -> Any:
    try:
        return json.loads(value_json)
    except json.JSONDecodeError:
        return value_json


def _key(item) -> str:
    # newer wandb versions may send nested_key instead of key
    return item.key or "/".join(item.nested_key)


def read_run(path: str | Path) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file (or the ``offline-run-*`` folder holding it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    from distill_lab.tracking.loggers import settle_wandb

    settle_wandb()  # a run finished in this process: wait until its writer has closed the file
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("run-*.wandb"))
        if not found:
            raise WandbFileError(f"{path}: no run-*.wandb file in this folder")
        path = found[0]
    run = OfflineRun(path=path)
    for payload in _payloads(path.read_bytes(), path):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity or None
            run.group, run.job_type = r.run_group or None, r.job_type or None
            run.name = r.display_name or None
            run.tags = list(r.tags)
            for item in r.config.update:
                run.config[_key(item)] = _json(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                run.config[_key(item)] = _json(item.value_json)
            for item in rec.config.remove:
                run.config.pop(_key(item), None)
        elif kind == "history":
            run.history.append({_key(i): _json(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                run.summary[_key(item)] = _json(item.value_json)
        elif kind == "artifact":
            a = rec.artifact
            run.artifacts.append({"name": a.name, "type": a.type,
                                  "files": [m.path for m in a.manifest.contents]})
        elif kind == "files":
            run.files += [f.path for f in rec.files.files]
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    # config values arrive wrapped as {"value": ..., "desc": ...}; unwrap them
    run.config = {k: (v["value"] if isinstance(v, dict) and "value" in v else v)
                  for k, v in run.config.items() if k != "_wandb"}
    # an offline run may end without a summary record: fall back on the last value of each key
    last: dict[str, Any] = {}
    for h in run.history:
        last.update({k: v for k, v in h.items() if not k.startswith("_")})
    run.summary = {**last, **run.summary}
    return run


def find_runs(root: str | Path) -> list[Path]:
    """Every ``run-*.wandb`` file under ``root`` (a run dir, a sweep dir or a ``wandb/`` folder)."""
    return sorted(Path(root).rglob("run-*.wandb"))


def read_table(run: OfflineRun, key: str) -> dict[str, Any]:
    """A logged ``wandb.Table`` as ``{"columns": [...], "data": [[...], ...]}``."""
    path = run.summary.get(f"{key}/path")
    if path is None:
        paths = run.metric(f"{key}/path")
        path = paths[-1] if paths else None
    ref = run.summary.get(key)
    if path is None and isinstance(ref, dict):
        path = ref.get("path")
    if not path:
        raise KeyError(f"{run.path}: no table logged under {key!r}")
    return json.loads((run.run_dir / "files" / path).read_text())
