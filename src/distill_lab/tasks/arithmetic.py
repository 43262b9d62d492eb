"""Reasoning: multi-digit addition and multiplication. OOD operands have more digits than train/test.

The oracle works column by column (addition) or by partial products (multiplication); ``effort``
sets how much of that work the trace shows. The final answer is always ``The answer is N.``
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, TaskFamily, effort_level, register

_ANSWER = re.compile(r"answer is\s*[:*]*\s*(-?\d[\d,]*)", re.I)
_NUMBER = re.compile(r"-?\d[\d,]*")


def extract_integer(text: str) -> str | None:
    """The number after the last "answer is", else the last number in the text (commas dropped)."""
    hits = _ANSWER.findall(text) or _NUMBER.findall(text)
    if not hits:
        return None
    raw = hits[-1].replace(",", "")
    sign = "-" if raw.startswith("-") else ""
    return sign + (raw.lstrip("-").lstrip("0") or "0") if raw.strip("-") else None


def addition_trace(a: int, b: int, effort: str) -> str:
    """The oracle's reasoning for ``a + b``: low = one line; medium = each column's sum with its operands
    (``4+9+1=14``), tersely; high = every column in words, with what is written and carried."""
    effort = effort_level(effort)
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
            lines.append(f"{x}+{y}{f'+{carry}' if carry else ''}={s}")
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


def count_carries(a: int, b: int) -> int:
    """How many columns of ``a + b`` carry into the next one."""
    carries = carry = 0
    while a or b:
        carry = (a % 10 + b % 10 + carry) // 10
        carries += carry
        a, b = a // 10, b // 10
    return carries


def multiplication_trace(a: int, b: int, effort: str) -> str:
    """Long multiplication: low = one line, medium = partial products, high = every digit with carries."""
    effort = effort_level(effort)
    if effort == "low":
        return f"{a} × {b} = {a * b}."
    partials = []
    lines = [f"Multiply {a} by each digit of {b}, starting from the ones."]
    for place, ch in enumerate(reversed(str(b))):
        d = int(ch)
        p = a * d * 10**place
        partials.append(p)
        if effort == "high":
            carry, steps = 0, []
            for ad in reversed(str(a)):
                s = int(ad) * d + carry
                steps.append(f"{ad} × {d}{f' + {carry}' if carry else ''} = {s}, write {s % 10} carry {s // 10}")
                carry = s // 10
            lines.append(f"Digit {d} (place {10**place}): " + "; ".join(steps) + ".")
            shift = f", shifted {place} place{'s' if place != 1 else ''}" if place else ""
            lines.append(f"So {a} × {d} = {a * d}{shift}: {p}.")
        else:
            lines.append(f"{a} × {d * 10**place} = {p}")
    lines.append("Add the partial products: " + " + ".join(map(str, partials)) + f" = {a * b}.")
    return "\n".join(lines)


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


class _TwoOperands(TaskFamily):
    """Shared generator: two operands of ``digits`` digits (``ood_digits`` for OOD)."""

    symbol = "+"

    def __init__(self, digits: int = 3, ood_digits: int = 5):
        if not 1 <= digits < ood_digits:
            raise ValueError(f"{self.name}: need 1 <= digits < ood_digits, got digits={digits}, ood_digits={ood_digits}")
        self.digits, self.ood_digits = digits, ood_digits

    def _value(self, a: int, b: int) -> int:
        raise NotImplementedError

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        digits = self.ood_digits if split == "ood" else self.digits
        space = (10**digits - (10 ** (digits - 1) if digits > 1 else 0)) ** 2
        seen: set[tuple[int, int]] = set()
        while len(seen) < space:
            a, b = _operand(rng, digits), _operand(rng, digits)
            if (a, b) in seen:
                continue
            seen.add((a, b))
            yield self._problem(split, f"What is {a} {self.symbol} {b}?", str(self._value(a, b)),
                                a=a, b=b, digits=digits)

    def extract(self, text: str) -> str | None:
        return extract_integer(text)

    def decontam_text(self, problem: Problem) -> str:
        return f"{problem.meta['a']} {self.symbol} {problem.meta['b']}"


@register
class Addition(_TwoOperands):
    name = "addition"
    category = "reasoning"
    symbol = "+"

    def _value(self, a: int, b: int) -> int:
        return a + b

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        a, b = problem.meta["a"], problem.meta["b"]
        return addition_trace(a, b, effort), f"The answer is {a + b}."

    def difficulty(self, problem: Problem) -> float:
        """The number of carries the column addition makes (0 for 123 + 456, 3 for 999 + 1)."""
        return float(count_carries(problem.meta["a"], problem.meta["b"]))


@register
class Multiplication(_TwoOperands):
    name = "multiplication"
    category = "reasoning"
    symbol = "×"

    def __init__(self, digits: int = 2, ood_digits: int = 3):
        super().__init__(digits, ood_digits)

    def _value(self, a: int, b: int) -> int:
        return a * b

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        a, b = problem.meta["a"], problem.meta["b"]
        return multiplication_trace(a, b, effort), f"The answer is {a * b}."

    def difficulty(self, problem: Problem) -> float:
        """The one-digit products long multiplication writes down: the multiplicand's digits times the
        multiplier's non-zero digits (a zero digit adds no partial product)."""
        a, b = problem.meta["a"], problem.meta["b"]
        return float(len(str(a)) * sum(1 for ch in str(b) if ch != "0"))
