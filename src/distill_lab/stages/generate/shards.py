"""The durable journal of a generation run: JSONL shards appended row by row, fsynced.

Layout under ``<dataset>/shards/``::

  rows-00000.jsonl, rows-00001.jsonl, ...   raw teacher rows, in arrival order (the resume state)
  failures.jsonl                            requests that gave no row, with the reason (one per attempt run)

Every line is flushed as it is written (a kill -9 loses nothing written) and fsynced at most every
``fsync_interval_s`` (a power loss loses at most that window). A process killed mid-write leaves at most one partial last line; opening the journal cuts it off, so
every complete line is a whole row. The row ``id`` is the resume key: a row whose id is already in a
shard is never requested or written again.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SHARD_GLOB = "rows-*.jsonl"


def _repair_tail(path: Path) -> int:
    """Cut a partial last line (no trailing newline) off ``path``; return the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # walk back to the last newline
        pos, chunk = size, 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            nl = buf.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return size - keep


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: corrupt journal line ({e.msg})") from None


def read_rows(root: Path) -> list[dict[str, Any]]:
    """Every row in the shards under ``root``, in order; an id written twice is a bug and raises."""
    out, seen = [], set()
    for p in sorted(Path(root).glob(SHARD_GLOB)):
        for r in iter_jsonl(p):
            if r["id"] in seen:
                raise ValueError(f"{p}: row id {r['id']} written twice")
            seen.add(r["id"])
            out.append(r)
    return out


def read_failures(root: Path) -> list[dict[str, Any]]:
    path = Path(root) / "failures.jsonl"
    return list(iter_jsonl(path)) if path.exists() else []


class Journal:
    """Append-only shards of rows plus a failure log, in ``root`` (``<dataset>/shards``)."""

    def __init__(self, root: Path, shard_rows: int = 1000, fsync_interval_s: float = 0.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # one writer per dataset: a second generate process on the same folder would duplicate requests;
        # the kernel drops the lock when the holder dies (kill -9 included)
        self._lock = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(f"{self.root}: another generate process is writing this dataset "
                               "(wait for it, or use another generate.output_dir)") from None
        self.shard_rows, self.fsync_interval_s = shard_rows, fsync_interval_s
        self._last_sync = 0.0
        self.repaired_bytes = sum(_repair_tail(p) for p in self.shard_paths())
        fail = self.root / "failures.jsonl"
        if fail.exists():
            self.repaired_bytes += _repair_tail(fail)
        self._f = None
        self._count = 0
        self._fail_f = None

    def shard_paths(self) -> list[Path]:
        return sorted(self.root.glob(SHARD_GLOB))

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.root)

    def failures(self) -> list[dict[str, Any]]:
        return read_failures(self.root)

    def _open_next(self) -> None:
        if self._f is not None:
            self._f.close()
        paths = self.shard_paths()
        # never append to an old shard: a new run starts a new shard, so a shard is written by one process
        idx = int(paths[-1].stem.split("-")[1]) + 1 if paths else 0
        self._f = open(self.root / f"rows-{idx:05d}.jsonl", "a")
        self._count = 0

    def _write(self, f, obj: dict[str, Any]) -> None:
        f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        f.flush()  # in the kernel now: a kill -9 of this process cannot lose it
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval_s:
            os.fsync(f.fileno())
            self._last_sync = now

    def append(self, row: dict[str, Any]) -> None:
        if self._f is None or self._count >= self.shard_rows:
            self._open_next()
        self._write(self._f, row)
        self._count += 1

    def record_failure(self, record: dict[str, Any]) -> None:
        """Log a request that gave no row (an error text could quote a secret: known ones are masked)."""
        from distill_lab.artifacts.manifest import redact

        if self._fail_f is None:
            self._fail_f = open(self.root / "failures.jsonl", "a")
        self._write(self._fail_f, redact(record))

    def close(self) -> None:
        for f in (self._f, self._fail_f):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        self._f = self._fail_f = None
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
