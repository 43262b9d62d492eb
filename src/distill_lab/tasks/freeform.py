"""Free-form prompts from external sources (JSONL, Parquet, HF datasets).

These prompts come with an optional ``reference``. ``extract`` takes the text after the last
"answer is" (else the last line), ``verify`` compares it with the reference after normalising case,
spaces and end punctuation (numbers compare as numbers). The oracle teacher can answer such a prompt
only by restating its reference; without one it refuses with an error naming the prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, TaskFamily, final_clause, register


def normalize_answer(text: str) -> str:
    s = re.sub(r"\s+", " ", text.strip().strip("*`").strip()).rstrip(".!").strip().lower()
    try:
        f = float(s.replace(",", ""))
        return str(int(f)) if f == int(f) else str(f)
    except ValueError:
        return s


@register
class FreeForm(TaskFamily):
    name = "freeform"
    category = "knowledge"  # the row's category comes from the source spec, not from here

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        raise ValueError("freeform: prompts come from recipe.sources, not from a generator")

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        if problem.reference is None:
            raise ValueError(f"oracle teacher: prompt {problem.prompt_id} ({problem.prompt[:60]!r}) has no reference; "
                             "use teacher=anthropic or teacher=openai_compat for free-form prompts")
        return "The reference answer is known for this prompt.", f"The answer is {problem.reference}."

    def extract(self, text: str) -> str | None:
        clause = final_clause(text)
        if clause is None:
            lines = [ln for ln in text.strip().splitlines() if ln.strip()]
            clause = lines[-1] if lines else None
        return normalize_answer(clause) if clause else None

    def verify(self, text: str, reference: str | None) -> bool:
        got = self.extract(text)
        return reference is not None and got is not None and got == normalize_answer(reference)
