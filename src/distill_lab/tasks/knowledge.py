"""Knowledge: a fixed synthetic fact base (invented countries and their capitals).

The facts do not exist anywhere else, so a student can only know them from its training data.
Train prompts teach each fact in eight phrasings (template set A); test asks the same facts in
other phrasings (set B); OOD asks them in the reverse direction (capital -> country), which the
training data never shows. The fact base depends on ``n_facts`` and ``fact_seed`` only, never on
the recipe seed, so every recipe and effort shares it. Answer: ``The answer is <Name>.``
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from functools import lru_cache

from distill_lab.tasks.base import Problem, TaskFamily, effort_level, final_clause, register

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "st", "tr", "th")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou")
_COUNTRY_ENDS = ("ia", "and", "ora", "istan", "eth", "ovia", "enne")
_CITY_ENDS = ("grad", "holm", "port", "mir", "ton", "ville", "burg", "ar")

TRAIN_TEMPLATES = ("What is the capital of {country}?", "Name the capital city of {country}.",
                   "{country} has which city as its capital?", "What city is the capital of {country}?",
                   "Do you know the capital of {country}?", "Which city serves as {country}'s capital?",
                   "The capital of {country} is called what?", "Quick question: capital of {country}?")
TEST_TEMPLATES = ("Which city is the seat of government of {country}?",
                  "If you fly to the capital of {country}, in which city do you land?",
                  "Tell me the capital of the country {country}.")
OOD_TEMPLATES = ("{capital} is the capital of which country?", "Which country is governed from {capital}?")
_NAME = re.compile(r"[A-Z][a-z]+(?:[- ][A-Z][a-z]+)*")


def _word(rng: random.Random, syllables: int, end: str) -> str:
    return ("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + end).capitalize()


@lru_cache(maxsize=8)
def fact_base(n_facts: int, fact_seed: int = 0) -> tuple[tuple[str, str], ...]:
    """``n_facts`` (country, capital) pairs; all names distinct; fixed by (n_facts, fact_seed)."""
    rng = random.Random(f"distill_lab/facts/{fact_seed}")
    used: set[str] = set()
    facts = []
    while len(facts) < n_facts:
        country = _word(rng, rng.randint(1, 2), rng.choice(_COUNTRY_ENDS))
        capital = _word(rng, rng.randint(1, 2), rng.choice(_CITY_ENDS))
        if country in used or capital in used:
            continue
        used |= {country, capital}
        facts.append((country, capital))
    return tuple(facts)


@register
class Capitals(TaskFamily):
    name = "capitals"
    category = "knowledge"

    def __init__(self, n_facts: int = 40, fact_seed: int = 0):
        if not 1 <= n_facts <= 2000:
            raise ValueError(f"capitals: n_facts must be in [1, 2000], got {n_facts}")
        self.facts = fact_base(n_facts, fact_seed)

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        """Train: round r asks every fact once (shuffled), each fact in a different phrasing per round,
        so the first ``n_facts`` train prompts teach every fact. Test/OOD: (fact, phrasing) shuffled."""
        if split == "train":
            for r in range(len(TRAIN_TEMPLATES)):
                order = list(range(len(self.facts)))
                rng.shuffle(order)
                for i in order:
                    country, capital = self.facts[i]
                    tpl = TRAIN_TEMPLATES[(i + r) % len(TRAIN_TEMPLATES)]
                    yield self._problem(split, tpl.format(country=country), capital, country=country,
                                        capital=capital, direction="forward", template=tpl)
            return
        templates = OOD_TEMPLATES if split == "ood" else TEST_TEMPLATES
        pairs = [(i, t) for i in range(len(self.facts)) for t in templates]
        rng.shuffle(pairs)
        for i, tpl in pairs:
            country, capital = self.facts[i]
            prompt = tpl.format(country=country, capital=capital)
            ref = country if split == "ood" else capital
            yield self._problem(split, prompt, ref, country=country, capital=capital,
                                direction="reverse" if split == "ood" else "forward", template=tpl)

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        m = problem.meta
        answer = f"The answer is {problem.reference}."
        level = effort_level(effort)
        if level == "low":
            return f"{m['capital']} is the capital of {m['country']}.", answer
        asked = "the country" if m["direction"] == "reverse" else "the capital"
        given = m["capital"] if m["direction"] == "reverse" else m["country"]
        lines = [f"The question gives {given} and asks for {asked}.",
                 f"I recall the fact: the capital of {m['country']} is {m['capital']}."]
        if level == "high":
            lines.append(f"The same fact read the other way: {m['capital']} is where {m['country']} is "
                         f"governed from. So {asked} is {problem.reference}.")
        return "\n".join(lines), answer

    def coverage(self, train: list[Problem], heldout: list[Problem]) -> dict[str, float | int]:
        """Held-out questions whose fact the train prompts teach (fewer train prompts than facts
        leave some facts untaught: those questions measure guessing, not retention)."""
        taught = {p.meta["country"] for p in train}
        asked = [p.meta["country"] for p in heldout]
        hit = sum(c in taught for c in asked)
        return {"facts_taught": len(taught), "heldout": len(asked), "heldout_taught": hit,
                "share_taught": hit / len(asked) if asked else 1.0}

    def extract(self, text: str) -> str | None:
        clause = final_clause(text)
        names = _NAME.findall(clause) if clause else []
        if not names:
            names = _NAME.findall(text)
        return names[-1] if names else None
