"""Reasoning: multi-step word problems built from sentence templates.

A person starts with some items; each step changes the count (buy, give away, multiply, receive
boxes). Train/test use ``steps`` in [min_steps, max_steps] and template set A; OOD uses more steps
(``ood_steps``) and template set B (phrasings never seen in training). Answer: ``The answer is N.``
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from distill_lab.tasks.arithmetic import extract_integer
from distill_lab.tasks.base import Problem, TaskFamily, effort_level, register

NAMES = ("Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Iris", "Tom", "Nina", "Sam")
ITEMS = ("apples", "marbles", "stickers", "books", "coins", "shells", "pencils", "cards")

# op -> (template A, template B); {n} current name, {k}/{m} numbers, {o} another person, {i} item
TEMPLATES = {
    "start": ("{n} has {k} {i}.", "At the start, {n} owns {k} {i}."),
    "add": ("{n} buys {k} more {i}.", "A friend hands {n} another {k} {i}."),
    "sub": ("{n} gives {k} {i} to {o}.", "On the way home, {k} of the {i} get lost."),
    "mul": ("{n} ends up with {k} times as many {i} as before.", "The pile of {i} grows to {k} times its size."),
    "box": ("{n} gets {k} boxes with {m} {i} in each.", "{k} bags arrive, each holding {m} {i}."),
    "ask": ("How many {i} does {n} have now?", "What is the final number of {i} that {n} owns?"),
}


def apply_op(value: int, op: str, k: int, m: int) -> int:
    return {"add": value + k, "sub": value - k, "mul": value * k, "box": value + k * m}[op]


def step_expr(value: int, op: str, k: int, m: int) -> str:
    return {"add": f"{value} + {k}", "sub": f"{value} - {k}", "mul": f"{value} × {k}",
            "box": f"{value} + {k} × {m}"}[op]


@register
class WordProblems(TaskFamily):
    name = "word_problems"
    category = "reasoning"

    def __init__(self, min_steps: int = 2, max_steps: int = 3, ood_steps: tuple[int, int] | list[int] = (4, 5)):
        lo, hi = int(ood_steps[0]), int(ood_steps[1])
        if not 1 <= min_steps <= max_steps < lo <= hi:
            raise ValueError(f"word_problems: need 1 <= min_steps <= max_steps < ood_steps[0] <= ood_steps[1], "
                             f"got {min_steps}, {max_steps}, {list(ood_steps)}")
        self.min_steps, self.max_steps, self.ood_steps = min_steps, max_steps, (lo, hi)

    def _steps(self, rng: random.Random, n_steps: int, start: int) -> list[tuple[str, int, int]]:
        steps, value = [], start
        while len(steps) < n_steps:
            op = rng.choice(("add", "sub", "mul", "box"))
            k, m = rng.randint(2, 9), rng.randint(2, 6)
            if op == "sub":
                if value < 2:
                    continue
                k = rng.randint(1, min(value - 1, 20))
            elif op == "mul":
                k = rng.randint(2, 3)
                if value > 60:
                    continue
            elif op == "add":
                k = rng.randint(2, 25)
            steps.append((op, k, m))
            value = apply_op(value, op, k, m)
        return steps

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        variant = 1 if split == "ood" else 0
        lo, hi = self.ood_steps if split == "ood" else (self.min_steps, self.max_steps)
        seen: set[str] = set()
        misses = 0
        while misses < 1000:
            name, other = rng.sample(NAMES, 2)
            item = rng.choice(ITEMS)
            start = rng.randint(3, 30)
            steps = self._steps(rng, rng.randint(lo, hi), start)
            fill = {"n": name, "o": other, "i": item}
            sentences = [TEMPLATES["start"][variant].format(k=start, **fill)]
            value = start
            for op, k, m in steps:
                sentences.append(TEMPLATES[op][variant].format(k=k, m=m, **fill))
                value = apply_op(value, op, k, m)
            sentences.append(TEMPLATES["ask"][variant].format(**fill))
            prompt = " ".join(sentences)
            if prompt in seen:
                misses += 1
                continue
            misses = 0
            seen.add(prompt)
            yield self._problem(split, prompt, str(value), name=name, item=item, start=start,
                                steps=[list(s) for s in steps], n_steps=len(steps), templates="AB"[variant])

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        m = problem.meta
        value, item = m["start"], m["item"]
        answer = f"The answer is {problem.reference}."
        level = effort_level(effort)
        exprs, lines = [], [f"Start with {value} {item}."]
        for op, k, mm in m["steps"]:
            new = apply_op(value, op, k, mm)
            exprs.append(f"{step_expr(value, op, k, mm)} = {new}")
            what = {"add": f"{k} more", "sub": f"{k} fewer", "mul": f"{k} times as many",
                    "box": f"{k} groups of {mm}, that is {k * mm} more"}[op]
            lines.append(f"Step {len(exprs)}: {what}: {step_expr(value, op, k, mm)} = {new}.")
            value = new
        if level == "low":
            return f"{m['name']} ends with {value} {item}.", answer
        if level == "medium":
            return "; ".join(exprs) + f". So {m['name']} has {value} {item}.", answer
        lines.append(f"After all {len(exprs)} steps {m['name']} has {value} {item}.")
        return "\n".join(lines), answer

    def extract(self, text: str) -> str | None:
        return extract_integer(text)

    def decontam_text(self, problem: Problem) -> str:
        """Names, item and numbers (the sentence templates are shared boilerplate)."""
        m = problem.meta
        ops = " ".join(f"{op} {k} {mm}" for op, k, mm in m["steps"])
        return f"{m['name']} {m['item']} {m['start']} {ops}"
