"""The offline teacher: solves built-in task families with their step-by-step oracle traces.

Deterministic: the same problem and effort give the same trace. ``effort`` maps to the trace's
detail (low: the answer with at most a line of work; medium: the main steps; high, xhigh, max:
every step; see each family's ``oracle``). It reports no token usage and no cost (nothing is
billed). Free-form prompts from ``recipe.sources`` can be answered only when they carry a
reference (the ``freeform`` family restates it); otherwise the error names the prompt.
"""

from __future__ import annotations

from distill_lab.config import TeacherConfig
from distill_lab.tasks.base import Problem, effort_level, get_family
from distill_lab.teachers.base import Teacher, TeacherReply


class OracleTeacher(Teacher):
    def __init__(self, cfg: TeacherConfig):
        super().__init__(cfg)
        effort_level(cfg.effort_name)  # an effort the oracle cannot map fails before any work

    async def complete(self, problem: Problem, sample_index: int) -> TeacherReply:
        family = get_family(problem.task)
        reasoning, answer = family.oracle(problem, self.cfg.effort_name)
        return TeacherReply(content=answer, reasoning=reasoning, stop_reason="end_turn",
                            usage={}, request_id=None, cost_usd=0.0)
