"""Mixed-effort distillation: one fixed prompt pool, the teacher asked at several efforts, mixed by share.

Li et al. 2025 ("Small Models Struggle to Learn from Strong Reasoners", arXiv 2502.12143) found small
students learn better from a mix of long and short traces than from long ones alone. ``recipe.effort_mix``
asks for such a mix:

- **Spec**: ``low@0.5+high@0.5`` (shares are normalised; ``:`` may stand for ``@`` and ``,`` for ``+``,
  as in ``"low:0.5,high:0.5"``, quoted on a command line). The ``@``/``+`` form holds no character
  Hydra escapes in a ``-m`` sweep (``recipe.effort_mix=low@0.5+high@0.5,low@0.25+high@0.75``), so the
  run folders named after it stay readable. Efforts are the teacher's (``teacher.allowed_efforts``).
- **Pool**: the recipe's prompts are the same as without a mix (``recipe.py`` never sees the teacher).
- **Which rows**: the mix applies to the train split. Each train prompt gets one effort
  (``recipe.effort_mix_duplicate=false``, the default: no prompt appears twice), dealt per task family so
  that each family holds the shares exactly (``quota``): ``recipe.effort_assign=random`` deals the efforts
  over the family's prompts in pool order (a seeded random order: ``recipe.seed``), by the house-monotone
  rule of ``recipe.deal``, so a smaller ``recipe.size`` keeps the efforts its prompts had in the larger pool;
  ``recipe.effort_assign=difficulty`` ("short for easy, long for hard") sorts the family's prompts by
  the difficulty the family states (``TaskFamily.difficulty``; ties in pool order) and gives the easiest
  share the least detailed effort, the next share the next effort, and so on.
  ``recipe.effort_mix_duplicate=true`` asks every train prompt at every effort of the mix (shares must
  then be equal).
- **Held-out prompts** (test, ood) are answered at the mix's most detailed effort: the teacher's answers
  there set the teacher's score and the evaluation budget, which must cover the longest traces the
  student learned.
- **Rows** record the effort that produced them (``teacher.effort`` of the row; each effort has its own
  teacher fingerprint, hence its own row ids: generation resumes as without a mix). The dataset's
  ``dataset.json`` effort is the mix's label, ``mix(low:0.5,high:0.5)``, which the sweep report draws as
  a line of its own beside the pure efforts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from distill_lab.errors import ConfigError
from distill_lab.stages.generate.effort_mix_spec import (  # noqa: F401  (re-exported: the spec's home)
    KEY,
    MIXED_SPLITS,
    RULES,
    EffortMix,
    check_recipe_mix,
    check_teacher_mix,
    effort_teacher_config,
    parse_mix,
)

if TYPE_CHECKING:
    from distill_lab.tasks.base import Problem


def assign_efforts(problems: dict[str, list[Problem]], mix: EffortMix, rule: str = "random",
                   duplicate: bool = False) -> dict[str, list[str]]:
    """prompt_id -> the efforts its prompt is asked at (module docstring). ``problems``: split -> prompts in
    pool order."""
    from distill_lab.stages.generate.recipe import deal, quota

    out: dict[str, list[str]] = {}
    for split, ps in problems.items():
        if split not in MIXED_SPLITS:
            for p in ps:
                out[p.prompt_id] = [mix.top]
            continue
        if duplicate:
            for p in ps:
                out[p.prompt_id] = mix.efforts
            continue
        by_task: dict[str, list[Problem]] = defaultdict(list)
        for p in ps:
            by_task[p.task].append(p)
        for group in by_task.values():
            if rule == "difficulty":
                scores = [difficulty(p) for p in group]
                order = sorted(range(len(group)), key=lambda i: (scores[i], i))
                counts = quota(len(group), mix.weights)
                efforts = [e for e, n in zip(mix.efforts, counts, strict=True) for _ in range(n)]
                for rank, i in enumerate(order):
                    out[group[i].prompt_id] = [efforts[rank]]
            else:
                for p, j in zip(group, deal(mix.weights, len(group)), strict=True):
                    out[p.prompt_id] = [mix.efforts[j]]
    return out


def difficulty(problem: Problem) -> float:
    """The difficulty the problem's family states; ``ConfigError`` where it states none."""
    from distill_lab.tasks.base import get_family

    d = get_family(problem.task).difficulty(problem)
    if d is None:
        raise ConfigError(f"recipe.effort_assign: difficulty needs every family to state a problem's difficulty, and "
                          f"{problem.task!r} states none (TaskFamily.difficulty); use recipe.effort_assign=random")
    return float(d)


def realised(problems: dict[str, list[Problem]], assignment: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """split -> effort -> prompts asked at it (for the stats and the card)."""
    out: dict[str, dict[str, int]] = {}
    for split, ps in problems.items():
        counts: dict[str, int] = defaultdict(int)
        for p in ps:
            for e in assignment.get(p.prompt_id, []):
                counts[e] += 1
        if counts:
            out[split] = dict(counts)
    return out


def mix_stats(mix: EffortMix, spec: str, rule: str, duplicate: bool, problems: dict[str, list[Problem]],
              assignment: dict[str, list[str]]) -> dict[str, Any]:
    return {"spec": spec, "label": mix.label, "shares": dict(mix.shares), "rule": rule, "duplicate": duplicate,
            "held_out_effort": mix.top, "realised": realised(problems, assignment)}
