"""Reasoning: transitive ordering. "Alice > Bob. Bob > Carol. ... What is the relation between A and D?"

The facts form one chain (plus the chain's other members as context), shown in shuffled order; the
question asks about two members ``hops`` links apart. Train/test use ``hops`` in [min_hops, max_hops]
and the train name pool; OOD uses more hops (``ood_hops``) and names never seen in training.
The answer is ``The answer is X > Y.`` (or ``X < Y``), with X and Y in the order the question names them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, TaskFamily, effort_level, final_clause, register

TRAIN_NAMES = ("Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
               "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil")
OOD_NAMES = ("Quentin", "Ursula", "Victor", "Wendy", "Xavier", "Yvonne", "Zeke", "Beatrix",
             "Cedric", "Delphine", "Ezra", "Fiona", "Gideon", "Hazel", "Ignatius", "Juno")

_REL = re.compile(r"([A-Z][a-z]+)\s*(>|<)\s*([A-Z][a-z]+)")


def canonical_relation(a: str, op: str, b: str) -> str:
    """A relation as stated (the reference keeps the order the question names them in)."""
    return f"{a} {op} {b}"


def same_relation(x: str | None, y: str | None) -> bool:
    """``X < Y`` and ``Y > X`` state one fact: compare as ``greater > lesser``."""
    def norm(r: str | None) -> tuple[str, str] | None:
        m = _REL.fullmatch(r.strip()) if r else None
        if not m:
            return None
        a, op, b = m.groups()
        return (a, b) if op == ">" else (b, a)
    nx = norm(x)
    return nx is not None and nx == norm(y)


@register
class Ordering(TaskFamily):
    name = "ordering"
    category = "reasoning"

    def __init__(self, min_hops: int = 2, max_hops: int = 3, ood_hops: tuple[int, int] | list[int] = (5, 6),
                 extra: int = 1):
        lo, hi = int(ood_hops[0]), int(ood_hops[1])
        if not 1 <= min_hops <= max_hops < lo <= hi:
            raise ValueError(f"ordering: need 1 <= min_hops <= max_hops < ood_hops[0] <= ood_hops[1], "
                             f"got {min_hops}, {max_hops}, {list(ood_hops)}")
        if hi + 1 + extra > len(OOD_NAMES) or max_hops + 1 + extra > len(TRAIN_NAMES):
            raise ValueError("ordering: chains longer than the name pools")
        self.min_hops, self.max_hops, self.ood_hops, self.extra = min_hops, max_hops, (lo, hi), extra

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        pool = OOD_NAMES if split == "ood" else TRAIN_NAMES
        lo, hi = self.ood_hops if split == "ood" else (self.min_hops, self.max_hops)
        seen: set[str] = set()
        misses = 0
        while misses < 1000:
            hops = rng.randint(lo, hi)
            chain = rng.sample(pool, hops + 1 + self.extra)  # chain[0] > chain[1] > ...
            start = rng.randint(0, self.extra)
            top, bottom = chain[start], chain[start + hops]
            facts = [(chain[i], chain[i + 1]) for i in range(len(chain) - 1)]
            rng.shuffle(facts)
            stated = [f"{x} > {y}." if rng.random() < 0.5 else f"{y} < {x}." for x, y in facts]
            x, y = (top, bottom) if rng.random() < 0.5 else (bottom, top)
            prompt = " ".join(stated) + f" What is the relation between {x} and {y}?"
            if prompt in seen:
                misses += 1
                continue
            misses = 0
            seen.add(prompt)
            ref = canonical_relation(x, ">" if x == top else "<", y)
            yield self._problem(split, prompt, ref, chain=chain, start=start, hops=hops, x=x, y=y)

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        m = problem.meta
        chain, start, hops = m["chain"], m["start"], m["hops"]
        path = chain[start:start + hops + 1]
        answer = f"The answer is {problem.reference}."
        level = effort_level(effort)
        if level == "low":
            return f"{path[0]} > {path[-1]}, so {problem.reference}.", answer
        if level == "medium":
            return f"Chain: {' > '.join(path)}. So {path[0]} > {path[-1]}, i.e. {problem.reference}.", answer
        lines = [f"Order the facts from the top: {' > '.join(chain)}.",
                 f"I need {m['x']} and {m['y']}; the link runs from {path[0]} down to {path[-1]}."]
        for i in range(1, len(path) - 1):
            lines.append(f"From {path[0]} > {path[i]} and {path[i]} > {path[i + 1]}, by transitivity "
                         f"{path[0]} > {path[i + 1]}.")
        if len(path) == 2:
            lines.append(f"{path[0]} > {path[1]} is stated directly.")
        lines.append(f"So {path[0]} > {path[-1]}, which, in the order asked, reads {problem.reference}.")
        return "\n".join(lines), answer

    def extract(self, text: str) -> str | None:
        clause = final_clause(text)
        hits = _REL.findall(clause) if clause else []
        if not hits:
            hits = _REL.findall(text)
        if not hits:
            return None
        return canonical_relation(*hits[-1])

    def verify(self, text: str, reference: str | None) -> bool:
        return same_relation(self.extract(text), reference)

    def decontam_text(self, problem: Problem) -> str:
        """The stated facts (the question's fixed wording is boilerplate shared by every prompt)."""
        return problem.prompt.rsplit(" What is the relation", 1)[0]
