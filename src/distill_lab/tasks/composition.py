"""Reasoning OOD by composition, not length: two trained skills chained at trained sizes.

The reasoning families' OOD is only "longer" (more digits, hops, steps), which a small model fails for
reasons unrelated to what it learnt. ``composition`` trains and tests each skill alone, and asks for
their composition out of distribution, with every operand and intermediate at a trained size:

- train / test: ``a + b`` (two 2-digit numbers whose sum stays below 100) or ``a × c`` (a 2-digit
  number times a digit 2-9), each with the oracle's column or long-multiplication trace;
- ood: ``(a + b) × c`` with the same kinds of operands: the sum is a 2-digit number like a trained
  multiplicand, so what is new is only that one skill's result feeds the other.

Answer: ``The answer is N.`` (``extract_integer``, as the arithmetic families).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from distill_lab.tasks.arithmetic import addition_trace, extract_integer, multiplication_trace
from distill_lab.tasks.base import Problem, TaskFamily, effort_level, register


@register
class Composition(TaskFamily):
    name = "composition"
    category = "reasoning"

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        seen: set[tuple] = set()
        space = 40 * 40 * 8  # far more than any recipe asks; the loop below also stops on repeats
        misses = 0
        while len(seen) < space and misses < 5000:
            a = rng.randint(10, 89)
            b = rng.randint(10, 99 - a)
            c = rng.randint(2, 9)
            if split == "ood":
                key, prompt = ("compose", a, b, c), f"What is ({a} + {b}) × {c}?"
                ref, meta = (a + b) * c, {"skill": "add_then_multiply", "a": a, "b": b, "c": c}
            elif rng.random() < 0.5:
                key, prompt, ref, meta = ("add", a, b), f"What is {a} + {b}?", a + b, {"skill": "add", "a": a, "b": b}
            else:
                key, prompt = ("mul", a + b, c), f"What is {a + b} × {c}?"
                ref, meta = (a + b) * c, {"skill": "multiply", "a": a + b, "c": c}
            if key in seen:
                misses += 1
                continue
            misses = 0
            seen.add(key)
            yield self._problem(split, prompt, str(ref), **meta)

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        m, level = problem.meta, effort_level(effort)
        if m["skill"] == "add":
            return addition_trace(m["a"], m["b"], level), f"The answer is {m['a'] + m['b']}."
        if m["skill"] == "multiply":
            return multiplication_trace(m["a"], m["c"], level), f"The answer is {m['a'] * m['c']}."
        s = m["a"] + m["b"]
        if level == "low":
            return f"{m['a']} + {m['b']} = {s}; {s} × {m['c']} = {s * m['c']}.", f"The answer is {s * m['c']}."
        steps = [f"First the brackets: {m['a']} + {m['b']}.", addition_trace(m["a"], m["b"], level),
                 f"Then multiply the sum by {m['c']}.", multiplication_trace(s, m["c"], level)]
        return "\n".join(steps), f"The answer is {s * m['c']}."

    def extract(self, text: str) -> str | None:
        return extract_integer(text)
