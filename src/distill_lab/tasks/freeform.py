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


def _words(text: str) -> list[str]:
    s = re.sub(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)", " ", text.lower())  # punctuation out, decimal points kept
    return [w for w in s.split() if w not in ("a", "an", "the")]


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
        """True when the final answer equals the reference, or names it: the reference's words appear as a
        run of whole words in the final clause (after lower-casing, dropping punctuation and articles, as
        SQuAD's answer normalisation does). "The capital of France is Paris." answers "Paris"; "12" does not
        answer "2". Written here (a few lines) because the checkers of lm-eval and math-verify compare whole
        strings or math expressions, not a short reference inside a sentence."""
        got = self.extract(text)
        if reference is None or got is None:
            return False
        if got == normalize_answer(reference):
            return True
        ref = _words(reference)
        said = _words(got)
        return bool(ref) and any(said[i:i + len(ref)] == ref for i in range(len(said) - len(ref) + 1))
