"""Style: the teacher's recognisable house style, scored by style features against the teacher.

Prompts ask to explain an everyday thing. The house style: an opening line ``In short: ...``, a blank
line, exactly three bullets ``- Label: text`` (What / Where / Why), a blank line, and a closing line
``Bottom line: ...``. Train/test ask about disjoint halves of one list of things in the train
phrasings; OOD asks about things never seen, in new phrasings.

``verify`` accepts an answer with every house-style feature that names the topic; ``score`` compares
the answer's style features with the teacher's answer to the same prompt (share of features that
agree), which is how style retention is measured.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from distill_lab.tasks.base import Problem, TaskFamily, effort_level, register

# thing -> (what it is, where it is found, why people use it)
THINGS = {
    "lighthouse": ("a tower with a strong lamp", "on coasts and harbour entrances", "to warn ships away from rocks"),
    "compass": ("a needle that points north", "in hikers' packs and ships", "to find a direction"),
    "kettle": ("a pot that boils water", "in most kitchens", "to make hot drinks quickly"),
    "umbrella": ("a folding canopy on a stick", "in bags and by front doors", "to stay dry in the rain"),
    "library": ("a building full of books to borrow", "in towns and schools", "to read without buying"),
    "bridge": ("a structure that spans a gap", "over rivers, roads and valleys", "to cross without a detour"),
    "thermometer": ("a tool that measures temperature", "in clinics, kitchens and labs", "to know how hot something is"),
    "bicycle": ("a two-wheeled pedal vehicle", "on streets and trails", "to travel cheaply and keep fit"),
    "calendar": ("a table of days and months", "on walls, desks and phones", "to plan ahead"),
    "ladder": ("a frame of rungs to climb", "in sheds and on building sites", "to reach high places"),
    "microscope": ("an instrument that magnifies tiny things", "in labs and classrooms", "to see cells and small detail"),
    "sundial": ("a plate whose shadow tells the time", "in gardens and old squares", "to read the hour from the sun"),
    "anchor": ("a heavy hook on a chain", "on boats and ships", "to keep a vessel in place"),
    "battery": ("a store of electric charge", "in phones, cars and torches", "to power devices without a cable"),
    "hammock": ("a hanging bed of cloth or net", "between trees and on porches", "to rest outdoors"),
    "telescope": ("a tube that gathers distant light", "in observatories and backyards", "to see far objects"),
    "windmill": ("a tower with sails turned by wind", "on open plains and coasts", "to grind grain or make power"),
    "stapler": ("a tool that joins paper with wire", "on office desks", "to keep pages together"),
    "greenhouse": ("a glass building that traps warmth", "in gardens and farms", "to grow plants out of season"),
    "backpack": ("a bag worn on the back", "with students and hikers", "to carry things hands-free"),
}
OOD_THINGS = {
    "aqueduct": ("a channel that carries water", "across valleys, often on arches", "to bring water to towns"),
    "metronome": ("a device that ticks a steady beat", "beside pianos and in studios", "to keep musical time"),
    "abacus": ("a frame of sliding beads", "in classrooms and old shops", "to count and calculate"),
    "periscope": ("a tube with angled mirrors", "in submarines and trenches", "to see over obstacles"),
    "loom": ("a frame for weaving threads", "in textile workshops", "to make cloth"),
    "kiln": ("a very hot oven", "in potteries and brickworks", "to harden clay"),
    "barometer": ("an instrument that measures air pressure", "in weather stations and homes", "to forecast weather"),
    "funicular": ("a cable railway up a slope", "on steep hills and mountains", "to carry people uphill"),
}
TRAIN_PHRASINGS = ("Explain what {a} {t} is.", "What is {a} {t}?", "Describe {a} {t} briefly.")
OOD_PHRASINGS = ("I keep hearing about the {t}. What should I know?", "Could you give me an overview of the {t}?")
AUDIENCES = ("", " Keep it simple.", " I am new to this.", " Answer for a visitor.", " Be brief.",
             " My friend asked me this.")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"

_BULLET = re.compile(r"^- ([A-Z][a-z]+): \S")


def style_features(text: str) -> dict[str, object]:
    """The house-style features of one answer."""
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    nonblank = [ln for ln in lines if ln.strip()]
    bullets = [ln for ln in nonblank if ln.lstrip().startswith(("- ", "* "))]
    words = len(text.split())
    return {
        "opens_in_short": bool(nonblank) and nonblank[0].startswith("In short:"),
        "bullets": len(bullets),
        "labelled_bullets": bool(bullets) and all(_BULLET.match(b) for b in bullets),
        "closes_bottom_line": bool(nonblank) and nonblank[-1].startswith("Bottom line:"),
        "blank_line_sections": sum(1 for ln in lines if not ln.strip()),
        "length_band": 0 if words < 25 else 1 if words < 60 else 2,
    }


HOUSE_STYLE = {"opens_in_short": True, "bullets": 3, "labelled_bullets": True, "closes_bottom_line": True,
               "blank_line_sections": 2}


class ThingQuestions(TaskFamily):
    """Questions about the things above: split by thing (the test and OOD things are never trained on),
    asked in the train or the OOD phrasings, to one of the audiences. Style families grade the answers'
    voice or layout (``house_style`` here, ``style_rules``)."""

    category = "style"

    def __init__(self) -> None:
        names = sorted(THINGS)
        self.split_things = {"train": names[::2] + names[1::4], "test": names[3::4], "ood": sorted(OOD_THINGS)}

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        phrasings = OOD_PHRASINGS if split == "ood" else TRAIN_PHRASINGS
        triples = [(t, p, a) for t in self.split_things[split] for p in phrasings for a in AUDIENCES]
        rng.shuffle(triples)
        for thing, tpl, audience in triples:
            yield self._problem(split, tpl.format(t=thing, a=article(thing)) + audience, thing, thing=thing)


@register
class HouseStyle(ThingQuestions):
    name = "house_style"

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        thing = problem.meta["thing"]
        what, where, why = THINGS.get(thing) or OOD_THINGS[thing]
        a = article(thing)
        answer = (f"In short: {a} {thing} is {what}.\n\n- What: {what}.\n- Where: {where}.\n- Why: {why}.\n\n"
                  f"Bottom line: {a} {thing} exists {why}.")
        level = effort_level(effort)
        if level == "low":
            return f"Define {thing}, then what, where, why.", answer
        plan = [f"Topic: {thing}.", "House style: an 'In short:' line, three labelled bullets, a 'Bottom line:'."]
        if level == "high":
            plan += [f"What it is: {what}.", f"Where it is found: {where}.", f"Why people use it: {why}.",
                     "Keep each bullet to one line and close with the purpose."]
        return "\n".join(plan), answer

    def extract(self, text: str) -> str | None:
        """The topic named on the ``In short:`` line, or None when the answer has no such line."""
        for ln in text.strip().splitlines():
            m = re.match(r"\s*In short:\s*(?:an?|the)?\s*([a-z]+)", ln)
            if m:
                return m.group(1)
        return None

    def verify(self, text: str, reference: str | None) -> bool:
        feats = style_features(text)
        return (reference is not None and all(feats[k] == v for k, v in HOUSE_STYLE.items())
                and reference.lower() in text.lower())

    def score(self, text: str, reference: str | None, teacher_text: str | None = None) -> float:
        """Share of style features equal to the teacher's answer (the house style when none is given)."""
        mine = style_features(text)
        target = style_features(teacher_text) if teacher_text else {**HOUSE_STYLE, "length_band": mine["length_band"]}
        return sum(mine[k] == target[k] for k in target) / len(target)
