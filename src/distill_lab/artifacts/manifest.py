"""``manifest.json``: what a stage ran with and what it wrote, without secrets (contract)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("distill_lab", "torch", "transformers", "peft", "lightning", "datasets", "hydra-core",
            "omegaconf", "bitsandbytes", "anthropic", "openai", "wandb")
# Keys whose values are secrets. Not "token" alone: max_tokens, budget_tokens are settings, not secrets.
_SECRET_KEY = re.compile(r"(api_?key|secret|password|authorization|(^|_)(access|auth|hf|bearer|api)_?token$)", re.I)
_SECRET_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY", "WANDB_API_KEY", "HF_TOKEN")


def secret_values() -> list[str]:
    """Values of the environment's secret variables (never to be written anywhere)."""
    vals = [os.environ.get(k, "") for k in _SECRET_ENV]
    vals += [v for k, v in os.environ.items() if _SECRET_KEY.search(k) and not k.endswith("_ENV")]
    return [v for v in vals if len(v) >= 8]


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """Replace secret-looking keys' values and any known secret value by ``"***"``."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) and not str(k).endswith("_env") and v else
                    redact(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        for s in secrets:
            obj = obj.replace(s, "***")
    return obj


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> dict[str, Any]:
    """Commit of the source tree distill_lab runs from (null outside a git checkout)."""
    src = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha or None, "dirty": bool(dirty) if sha else None}


def command_line() -> str:
    from distill_lab.invocation import command_line as _command_line

    return _command_line()


def write_manifest(run_dir: Path, *, stage: str, config: dict[str, Any], artifacts: dict[str, str],
                   timings: dict[str, float], summary: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir/manifest.json`` atomically and return its path (``extra``: more top-level keys,
    e.g. the runner's ``config_sha256`` and ``objective``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "stage": stage,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": redact(command_line()),
        "config": redact(config),
        "versions": package_versions(),
        "git": git_commit(),
        "artifacts": artifacts,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "summary": redact(summary or {}),
        "host": platform.node(),
        **(extra or {}),
    }
    path = run_dir / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def config_dict(cfg: Any) -> dict[str, Any]:
    """Plain, resolved dict of a config (a structured dataclass or a DictConfig; enums as their values),
    for manifests and loggers."""
    from dataclasses import is_dataclass

    from omegaconf import OmegaConf

    node = OmegaConf.structured(cfg) if is_dataclass(cfg) else cfg
    out = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    assert isinstance(out, dict)
    return out
