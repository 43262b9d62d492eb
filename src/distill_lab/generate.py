"""The ``generate`` stage: a recipe's prompts -> the teacher -> a dataset folder (rows contract)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from distill_lab.config import Config
from distill_lab.data.recipe import build_problems
from distill_lab.data.rows import make_row, save_dataset
from distill_lab.stage import StageResult
from distill_lab.tasks.base import get_family
from distill_lab.teachers.base import build_teacher

log = logging.getLogger(__name__)


async def _generate_rows(cfg: Config, problems):
    teacher = build_teacher(cfg.teacher)
    fp = teacher.fingerprint()
    rows = []
    try:
        for p in problems:
            family = get_family(p.task)
            for k in range(cfg.generate.samples_per_prompt):
                reply = await teacher.complete(p, k)
                verified = family.verify(reply.content, p.reference) if cfg.recipe.verify else None
                rows.append(make_row(p, k, fp, reply, verified))
    finally:
        await teacher.aclose()
    return rows


def run(cfg: Config, run_dir: Path) -> StageResult:
    out_dir = Path(cfg.generate.output_dir or run_dir / "dataset")
    recipe = build_problems(cfg.recipe)
    problems = [p for s in cfg.generate.splits for p in recipe.problems[s]]
    rows = asyncio.run(_generate_rows(cfg, problems)) + recipe.imported_rows
    counts = save_dataset(rows, out_dir)
    log.info("wrote %d rows to %s: %s", len(rows), out_dir, counts)
    return StageResult(artifacts={"dataset": str(out_dir)},
                       summary={"rows": len(rows), "per_split": counts, "recipe": recipe.stats,
                                "cost_usd": sum(r["cost_usd"] for r in rows)})
