"""A recipe's prompt pool: problems per split from its task families, disjoint across splits.

The pool depends only on ``recipe`` (families, sizes, seed), never on the teacher or its effort, so
every effort level of an ablation sees the same prompts. Each family draws its problems from its own
seeded stream, so a smaller ``size`` is a prefix (a nested subset) of a larger one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from distill_lab.config import RecipeConfig
from distill_lab.tasks.base import SPLITS, Problem, get_family


@dataclass
class RecipeResult:
    problems: dict[str, list[Problem]]  # split -> problems
    imported_rows: list[dict[str, Any]] = field(default_factory=list)  # teacher rows from sources
    stats: dict[str, Any] = field(default_factory=dict)


def _quota(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` by ``weights`` (largest remainders), summing exactly to ``total``."""
    raw = [total * w / sum(weights) for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def build_problems(recipe: RecipeConfig) -> RecipeResult:
    sizes = {"train": recipe.size, "test": recipe.test_size, "ood": recipe.ood_size}
    weights = [f.weight for f in recipe.families]
    problems: dict[str, list[Problem]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    overlaps = 0
    for split in SPLITS:
        for spec, n in zip(recipe.families, _quota(sizes[split], weights), strict=True):
            family = get_family(spec.name, **spec.params)
            rng = random.Random(f"{recipe.seed}/{spec.name}/{split}")
            got: list[Problem] = []
            while len(got) < n:  # draw in the same order whatever n is: smaller sizes are prefixes
                for p in family.generate(split, n - len(got), rng):
                    if p.prompt in seen:
                        overlaps += 1
                        continue
                    seen.add(p.prompt)
                    got.append(p)
            problems[split].extend(got)
    stats = {"counts": {s: len(ps) for s, ps in problems.items()}, "cross_split_overlaps_removed": overlaps}
    return RecipeResult(problems=problems, stats=stats)
