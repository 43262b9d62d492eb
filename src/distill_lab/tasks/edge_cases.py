"""Edge cases: problems with no solution, with several valid answers, or with a false premise.

Three kinds, mixed with controls where the normal answer is right, so the edge case must be noticed:
- ``contradiction``: ordering facts that may contain a cycle. With a cycle the answer is
  ``The answer is: no solution.``; without one, the relation (``X > Y``).
- ``multiple``: whole numbers in a range divisible by ``d``: none (``no solution``), exactly one
  (``The answer is 12.``), or several (``The answer is: several valid answers: 12, 18.``).
- ``false_premise``: "Given that a + b = s, what is a + b + c?", where ``s`` may be wrong; when it is,
  ``The answer is: the premise is wrong; the correct result is N.``
OOD: longer chains and cycles with unseen names, wider ranges, three-term premises.

Canonical answers (``extract``): ``no solution`` | ``several: 12, 18`` | ``premise wrong: N`` | ``N`` |
``X > Y``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, TaskFamily, effort_level, final_clause, register
from distill_lab.tasks.ordering import OOD_NAMES, TRAIN_NAMES, same_relation

KINDS = ("contradiction", "multiple", "false_premise")
_INT = re.compile(r"-?\d+")
_REL = re.compile(r"([A-Z][a-z]+)\s*(>|<)\s*([A-Z][a-z]+)")


def canonical_answer(clause: str) -> str | None:
    low = clause.lower()
    if "no solution" in low:
        return "no solution"
    nums = _INT.findall(clause)
    if "premise" in low and ("wrong" in low or "false" in low or "incorrect" in low):
        return f"premise wrong: {nums[-1]}" if nums else None
    if "several" in low or "multiple" in low:
        return "several: " + ", ".join(str(n) for n in sorted(int(x) for x in nums)) if nums else None
    rel = _REL.findall(clause)
    if rel:
        a, op, b = rel[-1]
        return f"{a} {op} {b}"
    return str(int(nums[-1])) if nums else None


@register
class EdgeCases(TaskFamily):
    name = "edge_cases"
    category = "edge_case"

    def __init__(self, kinds: list[str] | tuple[str, ...] = KINDS, edge_share: float = 0.6):
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise ValueError(f"edge_cases: unknown kinds {bad}; expected a non-empty subset of {KINDS}")
        if not 0 < edge_share <= 1:
            raise ValueError(f"edge_cases: edge_share must be in (0, 1], got {edge_share}")
        self.kinds, self.edge_share = tuple(kinds), edge_share

    # ---- generators: each returns (prompt, reference, meta)
    def _contradiction(self, rng: random.Random, ood: bool, edge: bool):
        pool = OOD_NAMES if ood else TRAIN_NAMES
        n = rng.randint(5, 6) if ood else rng.randint(3, 4)
        chain = rng.sample(pool, n)  # chain[0] > chain[1] > ...
        facts = [(chain[i], chain[i + 1]) for i in range(n - 1)]
        if edge:
            facts.append((chain[-1], chain[0]))  # closes a cycle
        rng.shuffle(facts)
        stated = [f"{x} > {y}." if rng.random() < 0.5 else f"{y} < {x}." for x, y in facts]
        i, j = sorted(rng.sample(range(n), 2))
        x, y = (chain[i], chain[j]) if rng.random() < 0.5 else (chain[j], chain[i])
        prompt = " ".join(stated) + f" What is the relation between {x} and {y}? If the facts cannot all hold, say so."
        ref = "no solution" if edge else f"{x} {'>' if x == chain[i] else '<'} {y}"
        return prompt, ref, {"chain": chain, "cycle": edge, "x": x, "y": y, "size": n}

    def _multiple(self, rng: random.Random, ood: bool, edge: bool):
        width = rng.randint(20, 40) if ood else rng.randint(6, 12)
        lo = rng.randint(1, 200 if ood else 60)
        hi = lo + width
        while True:
            d = rng.randint(2, max(19, width + 5))
            sols = [v for v in range(lo, hi + 1) if v % d == 0]
            if (len(sols) != 1) == edge:
                break
        prompt = (f"Which whole numbers from {lo} to {hi} are divisible by {d}? If none is, say there is no "
                  "solution; if several are, list them all.")
        ref = "no solution" if not sols else str(sols[0]) if len(sols) == 1 else \
            "several: " + ", ".join(map(str, sols))
        return prompt, ref, {"lo": lo, "hi": hi, "d": d, "solutions": sols}

    def _false_premise(self, rng: random.Random, ood: bool, edge: bool):
        terms = [rng.randint(10, 99) for _ in range(3 if ood else 2)]
        c = rng.randint(2, 40)
        true_sum = sum(terms)
        stated = true_sum + rng.choice([-10, -2, -1, 1, 2, 10]) if edge else true_sum
        expr = " + ".join(map(str, terms))
        prompt = f"Given that {expr} = {stated}, what is {expr} + {c}? Check the given fact first."
        ref = f"premise wrong: {true_sum + c}" if edge else str(true_sum + c)
        return prompt, ref, {"terms": terms, "c": c, "stated": stated, "true_sum": true_sum}

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        ood = split == "ood"
        seen: set[str] = set()
        misses = 0
        while misses < 1000:
            kind = rng.choice(self.kinds)
            edge = rng.random() < self.edge_share
            prompt, ref, meta = getattr(self, f"_{kind}")(rng, ood, edge)
            if prompt in seen:
                misses += 1
                continue
            misses = 0
            seen.add(prompt)
            is_edge = ref.startswith(("no solution", "several", "premise"))
            yield self._problem(split, prompt, ref, kind=kind, edge=is_edge, **meta)

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        m, ref, level = problem.meta, problem.reference or "", effort_level(effort)
        if ref == "no solution":
            answer = "The answer is: no solution."
        elif ref.startswith("several: "):
            answer = f"The answer is: several valid answers: {ref[len('several: '):]}."
        elif ref.startswith("premise wrong: "):
            answer = f"The answer is: the premise is wrong; the correct result is {ref.split(': ')[1]}."
        else:
            answer = f"The answer is {ref}."
        kind = m["kind"]
        if kind == "contradiction":
            chain = m["chain"]
            if m["cycle"]:
                steps = [f"The facts give {' > '.join(chain)}, and also {chain[-1]} > {chain[0]}.",
                         f"Then {chain[0]} > {chain[0]}, which is impossible: the facts contradict each other."]
            else:
                steps = [f"The facts give one consistent chain: {' > '.join(chain)}.",
                         f"So the relation asked for is {ref}."]
        elif kind == "multiple":
            sols = m["solutions"]
            steps = [f"Multiples of {m['d']} from {m['lo']} to {m['hi']}: {', '.join(map(str, sols)) or 'none'}.",
                     "None fits, so there is no solution." if not sols else
                     "Exactly one fits." if len(sols) == 1 else f"{len(sols)} fit, so all are valid answers."]
            if level == "high":
                first = -(-m["lo"] // m["d"]) * m["d"]
                steps.insert(0, f"The first multiple of {m['d']} at or above {m['lo']} is {first}; "
                                f"then add {m['d']} until passing {m['hi']}.")
        else:
            expr = " + ".join(map(str, m["terms"]))
            steps = [f"Check the premise: {expr} = {m['true_sum']}"
                     + (f", not {m['stated']}: the premise is wrong." if m["stated"] != m["true_sum"]
                        else ", as given."),
                     f"Then {m['true_sum']} + {m['c']} = {m['true_sum'] + m['c']}."]
        if level == "low":
            steps = steps[-1:]
        elif level == "medium":
            steps = steps[-2:]
        return "\n".join(steps), answer

    def decontam_text(self, problem: Problem) -> str:
        """The instance (facts, range and divisor, or the premise), not the shared instructions."""
        m = problem.meta
        if m["kind"] == "contradiction":
            return problem.prompt.split(" What is the relation", 1)[0] + f" ask {m['x']} {m['y']}"
        if m["kind"] == "multiple":
            return f"multiples of {m['d']} from {m['lo']} to {m['hi']}"
        return f"premise {' + '.join(map(str, m['terms']))} = {m['stated']} plus {m['c']}"

    def verify(self, text: str, reference: str | None) -> bool:
        got = self.extract(text)
        if got is None or reference is None:
            return False
        return got == reference or same_relation(got, reference)

    def extract(self, text: str) -> str | None:
        clause = final_clause(text)
        return canonical_answer(clause if clause is not None else text.strip().splitlines()[-1] if text.strip() else "")
