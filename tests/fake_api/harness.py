"""Helpers for generation tests: configs aimed at the local fakes, reading a dataset folder back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_lab.artifacts.rows import load_rows
from tests.conftest import compose_config

SECRET = "sk-ant-test-9f8e7d6c5b4a-SECRET"
FAST = ["generate.progress=false", "generate.retry_base_s=0.01", "generate.retry_cap_s=0.05",
        "teacher.batch_poll_seconds=0.05", "student=tiny"]


def gen_config(teacher: str, url: str | None, out: Path, *overrides: str, size: int = 6, test: int = 2,
               ood: int = 2):
    ov = [f"teacher={teacher}", f"generate.output_dir={out}", f"recipe.size={size}", f"recipe.test_size={test}",
          f"recipe.ood_size={ood}", *FAST]
    if url is not None:
        ov.append(f"teacher.base_url={url}" + ("/v1" if teacher == "openai_compat" else ""))
    return compose_config([*ov, *overrides], stage="generate")


def rows_by_split(out: Path) -> dict[str, list[dict[str, Any]]]:
    out_rows: dict[str, list[dict[str, Any]]] = {}
    for r in load_rows(out):
        out_rows.setdefault(r["split"], []).append(r)
    return out_rows
