"""The offline teacher: solves built-in task families with their step-by-step oracle traces.

Deterministic: the same problem and effort give the same trace. It reports no token usage and no cost
(nothing is billed); ``effort`` maps to the trace's detail (see each family's ``oracle``).
"""

from __future__ import annotations

from distill_lab.tasks.base import Problem, get_family
from distill_lab.teachers.base import Teacher, TeacherReply


class OracleTeacher(Teacher):
    async def complete(self, problem: Problem, sample_index: int) -> TeacherReply:
        family = get_family(problem.task)
        reasoning, answer = family.oracle(problem, self.cfg.effort_name)
        return TeacherReply(content=answer, reasoning=reasoning, stop_reason="end_turn",
                            usage={}, request_id=None, cost_usd=0.0)
