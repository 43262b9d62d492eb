"""Reasoning: multi-digit addition. Train/test draw ``digits``-digit operands, OOD ``ood_digits``.

The oracle adds column by column; ``effort`` sets how much of that work the trace shows.
The final answer is always the sentence ``The answer is N.``
"""

from __future__ import annotations

import random
import re

from distill_lab.tasks.base import Problem, TaskFamily, make_prompt_id, register

_ANSWER = re.compile(r"answer is\s*[:*]*\s*(-?\d[\d,]*)", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*")


def extract_integer(text: str) -> str | None:
    """The number after the last "answer is", else the last number in the text (commas dropped)."""
    hits = _ANSWER.findall(text) or _NUMBER.findall(text)
    if not hits:
        return None
    return hits[-1].replace(",", "").lstrip("0") or "0"


def addition_trace(a: int, b: int, effort: str) -> str:
    """The oracle's reasoning for ``a + b``: low = one line, medium = column sums, high = every column."""
    total = a + b
    if effort == "low":
        return f"{a} + {b} = {total}."
    da, db = str(a)[::-1], str(b)[::-1]
    lines, carry, digits = [], 0, []
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        if effort == "medium":
            lines.append(f"column {i + 1}: {s}")
        else:
            plus_carry = f" + {carry}" if carry else ""
            lines.append(f"Column {i + 1}: {x} + {y}{plus_carry} = {s}. Write {s % 10}, carry {s // 10}.")
        digits.append(s % 10)
        carry = s // 10
    if carry:
        digits.append(carry)
        if effort != "medium":
            lines.append(f"The last carry {carry} becomes the leading digit.")
    if effort == "medium":
        return f"{a} + {b}: " + ", ".join(lines) + f". So {a} + {b} = {total}."
    head = f"Add {a} and {b} column by column, starting from the ones."
    tail = f"Reading the digits from the left: {''.join(map(str, reversed(digits)))}. So {a} + {b} = {total}."
    return "\n".join([head, *lines, tail])


@register
class Addition(TaskFamily):
    name = "addition"
    category = "reasoning"

    def __init__(self, digits: int = 3, ood_digits: int = 5):
        if not 1 <= digits < ood_digits:
            raise ValueError(f"addition: need 1 <= digits < ood_digits, got digits={digits}, ood_digits={ood_digits}")
        self.digits, self.ood_digits = digits, ood_digits

    def _operand(self, rng: random.Random, digits: int) -> int:
        return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)

    def generate(self, split: str, n: int, rng: random.Random) -> list[Problem]:
        digits = self.ood_digits if split == "ood" else self.digits
        space = (10**digits - (10 ** (digits - 1) if digits > 1 else 0)) ** 2
        if n > space:
            raise ValueError(f"addition: asked for {n} distinct {digits}-digit problems, only {space} exist")
        out, seen = [], set()
        while len(out) < n:
            a, b = self._operand(rng, digits), self._operand(rng, digits)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            prompt = f"What is {a} + {b}?"
            out.append(Problem(prompt_id=make_prompt_id(self.name, split, prompt), task=self.name,
                               category=self.category, split=split, prompt=prompt, reference=str(a + b),
                               meta={"a": a, "b": b, "digits": digits}))
        return out

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        a, b = problem.meta["a"], problem.meta["b"]
        return addition_trace(a, b, effort), f"The answer is {a + b}."

    def extract(self, text: str) -> str | None:
        return extract_integer(text)
