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
