"""Build a student's cache folder once, atomically, even when several processes race for it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(final: Path, build: Callable[[Path], None], *, ready: tuple[str, ...] = ("config.json",)) -> Path:
    """``final`` if its ``ready`` files exist; else ``build(tmp)`` in a sibling temp folder, renamed into place.

    A process that loses the rename race keeps the winner's copy (both built the same thing).
    """
    if all((final / name).is_file() for name in ready):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / ready[0]).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
