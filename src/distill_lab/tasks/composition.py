"""Reasoning by composition: trained skills chained, in distribution and beyond it, at trained sizes.

The reasoning families' OOD is only "longer" (more digits, hops, steps), which a small model fails for
reasons unrelated to what it learnt. ``composition`` chains the two arithmetic skills (add, multiply by
a digit) with every operand and intermediate at a trained size, so what varies is the chain, not the
size of the numbers:

- train / test: two-step chains, ``(a + b) × c`` (the sum feeds the product) or ``a × c + d`` (the
  product feeds the sum); every prompt chains two operations;
- ood: a three-step chain never trained, ``(a + b) × c + d``: its steps are the two trained chains'
  steps at their trained sizes (a 2-digit sum, a 2-digit number times a digit, a 3-digit number plus a
  2-digit one), so what is new is only the longer chain.

Operands: ``a``, ``b`` 2-digit with ``a + b < 100``; ``c`` a digit 2-9; ``d`` 2-digit.
Answer: ``The answer is N.`` (``extract_integer``, as the arithmetic families).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from distill_lab.tasks.arithmetic import addition_trace, extract_integer, multiplication_trace
from distill_lab.tasks.base import Problem, TaskFamily, effort_level, register

# skill -> how many operations its prompt chains
CHAINS = {"add_then_multiply": 2, "multiply_then_add": 2, "add_multiply_add": 3}


def operations(prompt: str) -> int:
    """How many arithmetic operations a composition prompt chains (its ``+`` and ``×`` signs)."""
    return prompt.count("+") + prompt.count("×")


@register
class Composition(TaskFamily):
    name = "composition"
    category = "reasoning"

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        seen: set[tuple] = set()
        misses = 0
        while misses < 5000:  # the space (~10^6 per form) is far larger than any recipe asks
            a = rng.randint(10, 89)
            b = rng.randint(10, 99 - a)
            c = rng.randint(2, 9)
            d = rng.randint(10, 99)
            if split == "ood":
                skill, prompt = "add_multiply_add", f"What is ({a} + {b}) × {c} + {d}?"
                ref, meta = (a + b) * c + d, {"a": a, "b": b, "c": c, "d": d}
            elif rng.random() < 0.5:
                skill, prompt = "add_then_multiply", f"What is ({a} + {b}) × {c}?"
                ref, meta = (a + b) * c, {"a": a, "b": b, "c": c}
            else:  # the product's multiplicand is a trained 2-digit sum size: a + b
                skill, prompt = "multiply_then_add", f"What is {a + b} × {c} + {d}?"
                ref, meta = (a + b) * c + d, {"a": a + b, "c": c, "d": d}
            key = (skill, *meta.values())
            if key in seen:
                misses += 1
                continue
            misses = 0
            seen.add(key)
            yield self._problem(split, prompt, str(ref), skill=skill, steps=CHAINS[skill], **meta)

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        m, level = problem.meta, effort_level(effort)
        a, c = m["a"], m["c"]
        s = a + m["b"] if "b" in m else a  # the multiplicand
        p = s * c
        answer = p + m["d"] if "d" in m else p
        if level == "low":
            parts = ([f"{a} + {m['b']} = {s}"] if "b" in m else []) + [f"{s} × {c} = {p}"]
            parts += [f"{p} + {m['d']} = {answer}"] if "d" in m else []
            return "; ".join(parts) + ".", f"The answer is {answer}."
        steps = []
        if "b" in m:
            steps += [f"First the brackets: {a} + {m['b']}.", addition_trace(a, m["b"], level),
                      f"Then multiply the sum by {c}."]
        else:
            steps.append(f"First the product: {s} × {c}.")
        steps.append(multiplication_trace(s, c, level))
        if "d" in m:
            steps += [f"Then add {m['d']} to the product.", addition_trace(p, m["d"], level)]
        return "\n".join(steps), f"The answer is {answer}."

    def extract(self, text: str) -> str | None:
        return extract_integer(text)
