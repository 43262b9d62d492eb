"""Ask the configured teacher (``teacher`` group) for answers to eval prompts that have none.

Used with ``eval.teacher_live=true``, e.g. for an external suite without ``teacher_answer``: each
prompt becomes a ``Problem`` (family ``freeform`` when the prompt names none) and goes to
``Teacher.complete`` with at most ``generate.concurrency`` requests in flight.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.rows import CUT_STOP_REASONS
from distill_lab.stages.evaluate.extract import join_thinking
from distill_lab.stages.evaluate.prompts import EvalPrompt
from distill_lab.tasks.base import Problem
from distill_lab.teachers.cost import usage_cost

if TYPE_CHECKING:
    from distill_lab.config import Config


def _problem(p: EvalPrompt) -> Problem:
    system = next((m["content"] for m in p.messages if m["role"] == "system"), None)
    return Problem(prompt_id=p.prompt_id, task=p.task or "freeform", category=p.category, split=p.split,
                   prompt=p.user_text, reference=p.reference, system=system, meta={"source": "eval"})


async def _ask_all(cfg: Config, todo: list[EvalPrompt]) -> list[Any]:
    from distill_lab.teachers.registry import build_teacher

    teacher = build_teacher(cfg.teacher)
    gate = asyncio.Semaphore(cfg.generate.concurrency)

    async def one(p: EvalPrompt):
        async with gate:
            return await teacher.complete(_problem(p), 0)

    try:
        return await asyncio.gather(*(one(p) for p in todo))
    finally:
        await teacher.aclose()


def ask_teacher(cfg: Config, prompts: list[EvalPrompt]) -> dict[str, Any]:
    """Fill ``teacher_outputs`` of the prompts that have none; return counts and cost."""
    todo = [p for p in prompts if not p.teacher_outputs]
    if not todo:
        return {"asked": 0, "cost_usd": 0.0}
    replies = asyncio.run(_ask_all(cfg, todo))
    for p, r in zip(todo, replies, strict=True):
        p.teacher_outputs = [join_thinking(r.reasoning, r.content)]
        p.teacher_cut = [r.stop_reason in CUT_STOP_REASONS]
    cost = sum(usage_cost(r.usage, cfg.teacher.prices) for r in replies)  # replies carry usage, not cost
    return {"asked": len(todo), "cost_usd": round(cost, 6),
            "teacher": {"provider": cfg.teacher.provider, "model": cfg.teacher.model, "effort": cfg.teacher.effort_name}}
