"""Edge cases with an unannounced control, and oracle traces that always show the check they report.

``edge_cases`` (``edge_cases.py``) announces the edge case in every prompt ("If the facts cannot all
hold, say so", "Check the given fact first"), so a student can score by following the hint without
noticing anything, and its low-effort traces keep only the last step (the answer reports a check the
trace never made). ``edge_checks`` asks the same problems (contradictions, several or no answers,
false premises, each mixed with controls whose normal answer is right):

- train: announced prompts only, as before;
- held-out: every problem twice, as a pair: announced (task ``edge_checks``) and the same problem
  with its hint removed (task ``edge_checks_unannounced``, a control reported apart), one after the
  other with the same ``meta["pair_id"]``. So announced and unannounced are balanced by design (exactly
  half each in every held-out split: the recipe keeps pairs whole) and announced minus unannounced is
  the hint's effect within item (same numbers, same answer), not a change of mix;
- the oracle's trace at every effort contains the check (low: the check in one line).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, effort_level, make_prompt_id, register
from distill_lab.tasks.edge_cases import EdgeCases

HINTS = (" If the facts cannot all hold, say so.", " If none is, say there is no solution; if several are, list them all.",
         " Check the given fact first.")
UNANNOUNCED = "edge_checks_unannounced"


def unannounced(prompt: str) -> str:
    """The prompt without its edge-case hint."""
    for h in HINTS:
        prompt = prompt.replace(h, "")
    return prompt


@register
class EdgeChecks(EdgeCases):
    name = "edge_checks"
    category = "edge_case"
    held_out_group = 2  # a held-out problem comes with its unannounced control (the design check's deal)

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        for p in super().stream(split, rng):
            pair_id = make_prompt_id("edge_checks/pair", split, p.prompt)
            yield Problem(prompt_id=make_prompt_id(self.name, split, p.prompt), task=self.name,
                          category=self.category, split=split, prompt=p.prompt, reference=p.reference,
                          meta={**p.meta, "announced": True, "pair_id": pair_id})
            if split != "train":
                prompt = unannounced(p.prompt)
                yield Problem(prompt_id=make_prompt_id(UNANNOUNCED, split, prompt), task=UNANNOUNCED,
                              category=self.category, split=split, prompt=prompt, reference=p.reference,
                              meta={**p.meta, "announced": False, "pair_id": pair_id})

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        reasoning, answer = super().oracle(problem, effort)
        if effort_level(effort) != "low":
            return reasoning, answer
        m = problem.meta
        if m["kind"] == "contradiction":
            c = m["chain"]
            check = (f"Check: {c[-1]} > {c[0]} closes a cycle, so the facts conflict." if m["cycle"]
                     else f"Check: one chain {' > '.join(c)}, no cycle.")
        elif m["kind"] == "multiple":
            check = f"Check: multiples of {m['d']} in {m['lo']}-{m['hi']}: {', '.join(map(str, m['solutions'])) or 'none'}."
        else:
            stated, true_sum = m["stated"], m["true_sum"]
            verdict = f", not {stated}" if stated != true_sum else ", as given"
            check = (f"Check: {' + '.join(map(str, m['terms']))} = {true_sum}{verdict}; "
                     f"+ {m['c']} = {true_sum + m['c']}.")
        return check, answer


@register
class EdgeChecksUnannounced(EdgeChecks):
    """The control task of ``edge_checks`` (registered so evaluation finds its verifier); used alone in
    a recipe it yields only its held-out problems."""

    name = UNANNOUNCED
    control_of = "edge_checks"

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        if split == "train":
            return
        for p in super().stream(split, rng):
            if p.task == self.name:
                yield p
