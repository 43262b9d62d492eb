"""Reading and writing the artifacts' JSON records: atomic writes, errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` to ``path`` through a temporary file and a rename: a reader never sees half a record."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)
    return path


def read_json(path: Path, error: type[Exception]) -> Any:
    """``path`` parsed, or ``error("<path>:<line>: not valid JSON (...)")``."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def read_jsonl(path: Path, error: type[Exception] = ValueError) -> list[Any]:
    """The records of a JSON-lines file (blank lines skipped), or ``error("<path>:<line>: not valid JSON (...)")``."""
    out = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise error(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return out
