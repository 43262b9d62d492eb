"""Skipping stages that already completed in their run directory, so a re-run ``-m`` sweep resumes.

A stage has completed in ``run_dir`` when ``run_dir/manifest.json`` exists: the runner writes it
atomically, and only after the stage returned (``stages/common.run_stage``). The manifest also
records ``config_sha256``, a hash of the resolved config the stage ran with (secrets redacted, the
keys in ``NOT_HASHED`` left out: they say where and how a run is launched, not what it computes).

With ``skip_completed`` on (the default inside ``-m`` sweeps, see ``Config.skip_completed``):
- a completed stage whose hash equals the new config's is skipped: its manifest's artifacts and
  summary are returned and nothing in the folder is written;
- a completed stage of a *different* config stops the run with a ``ConfigError`` that names the
  folder and the keys that differ: results of two configs are never mixed in one folder;
- a folder without a manifest (a stage killed half-way), or whose manifest says the stage stopped
  short (``incomplete``: a spend cap, failed requests), is run again; the stages' own resume
  (generation's row ids, ``train.resume=auto`` checkpoints) continues from what it finds.
When a stage is (re-)run, an old manifest in its folder is removed first, so a run killed half-way
through a re-run is never taken for complete.

The hash covers the config, not the code: a manifest also records the git commit (``git``), and
``distill-lab report`` lists the commits a sweep's runs were made with.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from distill_lab.artifacts.manifest import redact
from distill_lab.errors import ConfigError

log = logging.getLogger(__name__)

# top-level keys that do not change what a stage computes
NOT_HASHED = ("run_dir", "print_config", "skip_completed", "sweep_name")


def hashed_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config dict that the hash covers (JSON-normalised, secrets redacted)."""
    kept = {k: v for k, v in config.items() if k not in NOT_HASHED}
    return json.loads(json.dumps(redact(kept), sort_keys=True, default=str))


def config_sha256(config: dict[str, Any]) -> str:
    blob = json.dumps(hashed_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (at most the first few matter)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old or k not in new:
                out.append(f"{key} (only in the {'new' if k in new else 'old'} config)")
            else:
                out += _diff(old[k], new[k], key)
        return out
    return [] if old == new else [f"{prefix}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}"]


def completed(stage: str, config: dict[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``stage`` completed in ``run_dir`` with this config, or None when it must run.

    Raises ``ConfigError`` when ``run_dir`` holds a completed run of another stage or config.
    """
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); remove it to run again") from e
    if manifest.get("incomplete"):  # the stage stopped short (spend cap, failed requests): run it again
        return None
    where = f"{run_dir} holds a completed {manifest.get('stage')!r} run"
    if manifest.get("stage") != stage:
        raise ConfigError(f"{where}, not a {stage!r} run: use another sweep_name / run_dir, or remove the folder")
    old_hash = manifest.get("config_sha256") or config_sha256(manifest.get("config") or {})
    if old_hash != config_sha256(config):
        diffs = _diff(hashed_config(manifest.get("config") or {}), hashed_config(config))
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        raise ConfigError(f"{where} of a different config ({shown or 'config_sha256 differs'}): results of two "
                          "configs are never mixed in one folder; use another sweep_name / run_dir, remove the "
                          "folder, or set skip_completed=false to overwrite it")
    return manifest


def forget(run_dir: Path) -> None:
    """Remove a stage's old manifest before it runs again (a half-done re-run must not look complete)."""
    path = Path(run_dir) / "manifest.json"
    if path.is_file():
        log.info("re-running the stage in %s: removing its old manifest first", run_dir)
        path.unlink()
