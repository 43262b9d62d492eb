"""Knowledge with controls: taught facts asked forward, beside facts never taught and reversed questions.

``capitals`` (``knowledge.py``) asks its OOD questions in the reverse direction (capital -> country),
which small LMs fail by construction (the reversal curse), and its facts are invented, so a real
teacher cannot know them. ``capital_facts`` separates what a knowledge score is made of:

- ``capital_facts``: facts the train split teaches (forward: country -> capital), asked in other
  phrasings (test) and in new question forms (ood: fill-in-the-blank, facts used inside a question);
- ``capital_facts_untaught`` (control): facts of the same base that train never shows, asked the same
  ways. A student can only guess or know them from before; taught minus untaught is what teaching did;
- ``capital_facts_reverse`` (control, ood): taught facts asked capital -> country, reported apart so
  the reversal curse does not pass for forgetting;
- ``capital_facts_train_phrasing`` (memorisation check, test): taught facts asked in the exact phrasing
  that first taught them (round 0 of the train stream: the train prompt itself, exempt from
  decontamination: ``meta["in_train"]``), beside the held-out phrasings: whether the rows were learnt
  at all, apart from whether the fact generalises to another wording.

Held-out splits deal their prompts round-robin over the tasks (test: taught, untaught, train
phrasing; ood: taught, untaught, reverse), so every task gets the same share of the family's slots
until one runs out. The controls are reported apart and never inside the knowledge figure.

The three are separate task names, so every eval block (per family) reports them apart; the recipe
names only ``capital_facts``, which emits all three. ``facts=invented`` (default) uses the synthetic
fact base of ``capitals`` (knowable only from training: what distillation *teaches*); ``facts=real``
uses real capitals, which a real teacher knows and a pretrained base may know in part (what
distillation *transfers* from a teacher; the base model's score on the untaught control is the prior).
Every ``untaught_every``-th fact is never taught.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, make_prompt_id, register
from distill_lab.tasks.knowledge import TEST_TEMPLATES, TRAIN_TEMPLATES, Capitals, fact_base

# ASCII names only (the extractor reads capitalised words); well-known, unambiguous capitals
REAL_FACTS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Hungary", "Budapest"), ("Greece", "Athens"),
    ("Ireland", "Dublin"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Ghana", "Accra"), ("Nigeria", "Abuja"),
    ("Morocco", "Rabat"), ("Ethiopia", "Addis Ababa"), ("Japan", "Tokyo"), ("China", "Beijing"),
    ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"), ("Philippines", "Manila"),
    ("India", "New Delhi"), ("Pakistan", "Islamabad"), ("Nepal", "Kathmandu"), ("Iran", "Tehran"),
    ("Iraq", "Baghdad"), ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Jordan", "Amman"),
    ("Russia", "Moscow"), ("Ukraine", "Kyiv"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Cuba", "Havana"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Argentina", "Buenos Aires"),
    ("Venezuela", "Caracas"), ("Colombia", "Bogota"), ("Australia", "Canberra"), ("Malaysia", "Kuala Lumpur"),
    ("Turkey", "Ankara"), ("Czechia", "Prague"),
)
OOD_FORWARD_TEMPLATES = ("Fill in the blank: the capital of {country} is ___.",
                         "A letter to the government of {country} goes to which city?")
OOD_REVERSE_TEMPLATES = ("{capital} is the capital of which country?", "Which country is governed from {capital}?")
UNTAUGHT, REVERSE, TRAIN_PHRASING = "capital_facts_untaught", "capital_facts_reverse", "capital_facts_train_phrasing"


@register
class CapitalFacts(Capitals):
    name = "capital_facts"
    category = "knowledge"

    def __init__(self, n_facts: int = 40, fact_seed: int = 0, untaught_every: int = 4, facts: str = "invented"):
        if facts not in ("invented", "real"):
            raise ValueError(f"capital_facts: facts must be 'invented' or 'real', got {facts!r}")
        if facts == "real" and not 4 <= n_facts <= len(REAL_FACTS):
            raise ValueError(f"capital_facts: with facts=real, n_facts must be in [4, {len(REAL_FACTS)}], got {n_facts}")
        if not 2 <= untaught_every <= n_facts:
            raise ValueError(f"capital_facts: untaught_every must be in [2, n_facts], got {untaught_every}")
        super().__init__(n_facts=min(n_facts, 2000), fact_seed=fact_seed)
        if facts == "real":
            self.facts = REAL_FACTS[:n_facts]
        self.kind, self.untaught_every = facts, untaught_every

    def taught(self, i: int) -> bool:
        return i % self.untaught_every != self.untaught_every - 1

    def _emit(self, task: str, split: str, prompt: str, ref: str, **meta) -> Problem:
        return Problem(prompt_id=make_prompt_id(task, split, prompt), task=task, category=self.category,
                       split=split, prompt=prompt, reference=ref, meta={**meta, "facts": self.kind})

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        """Train: taught facts only, each in a different phrasing per round (as ``capitals``). Held-out:
        (fact, template) pairs shuffled; taught facts under this family's name, the controls under theirs."""
        if split == "train":
            for r in range(len(TRAIN_TEMPLATES)):
                order = [i for i in range(len(self.facts)) if self.taught(i)]
                rng.shuffle(order)
                for i in order:
                    country, capital = self.facts[i]
                    tpl = TRAIN_TEMPLATES[(i + r) % len(TRAIN_TEMPLATES)]
                    yield self._emit(self.name, split, tpl.format(country=country), capital, country=country,
                                     capital=capital, direction="forward", template=tpl, taught=True)
            return
        forward = OOD_FORWARD_TEMPLATES if split == "ood" else TEST_TEMPLATES
        lanes: dict[str, list[tuple[int, str, str]]] = {self.name: [], UNTAUGHT: []}
        for i in range(len(self.facts)):
            lanes[self.name if self.taught(i) else UNTAUGHT] += [(i, t, "forward") for t in forward]
        if split == "ood":
            lanes[REVERSE] = [(i, t, "reverse") for i in range(len(self.facts)) if self.taught(i)
                              for t in OOD_REVERSE_TEMPLATES]
        else:  # the phrasing that first taught the fact: round 0 of the train stream
            lanes[TRAIN_PHRASING] = [(i, TRAIN_TEMPLATES[i % len(TRAIN_TEMPLATES)], "forward")
                                     for i in range(len(self.facts)) if self.taught(i)]
        for lane in lanes.values():
            rng.shuffle(lane)
        for k in range(max(len(lane) for lane in lanes.values())):  # round-robin: equal shares per task
            for task, lane in lanes.items():
                if k >= len(lane):
                    continue
                i, tpl, direction = lane[k]
                country, capital = self.facts[i]
                extra = {"in_train": True} if task == TRAIN_PHRASING else {}
                yield self._emit(task, split, tpl.format(country=country, capital=capital),
                                 country if direction == "reverse" else capital, country=country,
                                 capital=capital, direction=direction, template=tpl, taught=self.taught(i),
                                 **extra)


class _Control(CapitalFacts):
    """A control task of ``capital_facts``: registered so evaluation finds its extractor and verifier;
    used alone in a recipe it yields only its own held-out problems (no train split)."""

    control_of = "capital_facts"

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        if split == "train":
            return
        for p in super().stream(split, rng):
            if p.task == self.name:
                yield p


@register
class CapitalFactsUntaught(_Control):
    name = UNTAUGHT


@register
class CapitalFactsReverse(_Control):
    name = REVERSE


@register
class CapitalFactsTrainPhrasing(_Control):
    name = TRAIN_PHRASING


__all__ = ["REAL_FACTS", "CapitalFacts", "CapitalFactsReverse", "CapitalFactsTrainPhrasing", "CapitalFactsUntaught",
           "fact_base"]
