"""Format: answers that must follow a stated output format, verified by parsing.

``json_record``: read a short description of a person and reply with only a JSON object with the
asked keys (train/test: 3 of 4 common keys; OOD: 5 keys including keys never asked in training).
``answer_line``: sort words alphabetically and end with a line ``Answer: w1, w2, ...`` (train/test:
3-5 words; OOD: 6-8 words from another vocabulary).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from typing import Any

from distill_lab.tasks.base import Problem, TaskFamily, effort_level, register

PEOPLE = ("Lena", "Omar", "Priya", "Jonas", "Mei", "Tariq", "Ines", "Kofi", "Sofia", "Hugo", "Ana", "Yusuf")
CITIES = ("Porto", "Lyon", "Osaka", "Quito", "Tartu", "Accra", "Perth", "Bergen", "Cusco", "Graz")
JOBS = ("baker", "nurse", "pilot", "teacher", "welder", "chemist", "gardener", "lawyer")
PETS = ("cat", "parrot", "turtle", "dog", "rabbit", "goldfish")
COLOURS = ("green", "amber", "violet", "teal", "crimson", "navy")
TRAIN_KEYS = ("name", "age", "city", "job")
OOD_KEYS = ("pet", "colour", "year")

_SENTENCE = {
    "age": "{name} is {age} years old.",
    "city": "{name} lives in {city}.",
    "job": "{name} works as a {job}.",
    "pet": "{name} keeps a {pet} at home.",
    "colour": "{name}'s favourite colour is {colour}.",
    "year": "{name} moved there in {year}.",
}
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def canonical_json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The answer as a JSON object when the whole answer is one (a ```json fence is allowed), else None."""
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1)
    try:
        obj = json.loads(s)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


@register
class JsonRecord(TaskFamily):
    name = "json_record"
    category = "format"

    def __init__(self, keys: int = 3, ood_keys: int = 5):
        if not 1 <= keys <= len(TRAIN_KEYS) or not keys < ood_keys <= len(TRAIN_KEYS) + len(OOD_KEYS):
            raise ValueError(f"json_record: need 1 <= keys <= 4 and keys < ood_keys <= 7, got {keys}, {ood_keys}")
        self.keys, self.ood_keys = keys, ood_keys

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        seen: set[str] = set()
        misses = 0
        while misses < 1000:
            person = {"name": rng.choice(PEOPLE), "age": rng.randint(18, 80), "city": rng.choice(CITIES),
                      "job": rng.choice(JOBS), "pet": rng.choice(PETS), "colour": rng.choice(COLOURS),
                      "year": rng.randint(1990, 2024)}
            if split == "ood":  # at least one key never asked in training
                asked = [rng.choice(OOD_KEYS)]
                rest = [k for k in (*TRAIN_KEYS, *OOD_KEYS) if k not in asked]
                asked += rng.sample(rest, self.ood_keys - 1)
            else:
                asked = rng.sample(TRAIN_KEYS, self.keys)
            rng.shuffle(asked)
            mentioned = [k for k in _SENTENCE if k in asked or rng.random() < 0.5]
            rng.shuffle(mentioned)
            desc = " ".join(_SENTENCE[k].format(**person) for k in mentioned)
            if "name" not in asked:
                desc = f"This is {person['name']}. " + desc
            key_list = ", ".join(f'"{k}"' for k in asked)
            numeric = [k for k in asked if k in ("age", "year")]
            note = f" Give {' and '.join(numeric)} as {'numbers' if len(numeric) > 1 else 'a number'}." if numeric else ""
            prompt = (f"{desc}\nReply with only a JSON object with exactly the keys {key_list}.{note}")
            if prompt in seen:
                misses += 1
                continue
            misses = 0
            seen.add(prompt)
            record = {k: person[k] for k in asked}
            yield self._problem(split, prompt, canonical_json(record), record=record, asked=asked,
                                description=desc, n_keys=len(asked))

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        record: dict[str, Any] = problem.meta["record"]
        answer = json.dumps(record, ensure_ascii=False)
        level = effort_level(effort)
        keys = list(record)
        if level == "low":
            return f"Keys {', '.join(keys)}; fill them from the description.", answer
        lines = [f"The object needs exactly {len(keys)} keys: {', '.join(keys)}."]
        for k in keys:
            v = record[k]
            kind = "a number" if isinstance(v, int) else "a string"
            lines.append(f"{k}: the description gives {v!r}, written as {kind}." if level == "high"
                         else f"{k} = {json.dumps(v)}")
        if level == "high":
            lines.append("No other keys, no text around the object.")
        return "\n".join(lines), answer

    def extract(self, text: str) -> str | None:
        obj = parse_json_object(text)
        return None if obj is None else canonical_json(obj)

    def decontam_text(self, problem: Problem) -> str:
        return problem.meta["description"] + " " + " ".join(problem.meta["asked"])


WORDS = ("pear", "apple", "fig", "plum", "kiwi", "lime", "mango", "grape", "melon", "lemon", "peach", "cherry",
         "olive", "date", "guava", "quince")
OOD_WORDS = ("otter", "badger", "heron", "lynx", "moose", "raven", "stoat", "viper", "walrus", "yak", "zebra",
             "bison", "crane", "dingo", "egret", "ferret")
_ANSWER_LINE = re.compile(r"^\s*Answer:\s*(.+?)\s*$")


@register
class AnswerLine(TaskFamily):
    name = "answer_line"
    category = "format"

    def __init__(self, min_words: int = 3, max_words: int = 5, ood_words: tuple[int, int] | list[int] = (6, 8)):
        lo, hi = int(ood_words[0]), int(ood_words[1])
        if not 2 <= min_words <= max_words < lo <= hi <= len(OOD_WORDS):
            raise ValueError(f"answer_line: need 2 <= min_words <= max_words < ood_words[0] <= ood_words[1] <= 16, "
                             f"got {min_words}, {max_words}, {list(ood_words)}")
        self.min_words, self.max_words, self.ood_words = min_words, max_words, (lo, hi)

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        pool = OOD_WORDS if split == "ood" else WORDS
        lo, hi = self.ood_words if split == "ood" else (self.min_words, self.max_words)
        seen: set[str] = set()
        misses = 0
        while misses < 1000:
            words = rng.sample(pool, rng.randint(lo, hi))
            prompt = (f"Sort these words alphabetically: {', '.join(words)}. "
                      "End your reply with a final line of the form `Answer: <the words, comma-separated>`.")
            if prompt in seen:
                misses += 1
                continue
            misses = 0
            seen.add(prompt)
            yield self._problem(split, prompt, ", ".join(sorted(words)), words=words, n_words=len(words))

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        words = problem.meta["words"]
        ordered = sorted(words)
        answer = f"In alphabetical order:\nAnswer: {', '.join(ordered)}"
        level = effort_level(effort)
        if level == "low":
            return "Sort by first letter, then the next.", answer
        if level == "medium":
            return "By first letter: " + ", ".join(f"{w} ({w[0]})" for w in ordered) + ".", answer
        lines = [f"The words: {', '.join(words)}."]
        remaining = list(words)
        for i in range(len(ordered)):
            first = min(remaining)
            lines.append(f"Position {i + 1}: of {', '.join(sorted(remaining, key=words.index))}, "
                         f"'{first}' comes first.")
            remaining.remove(first)
        lines.append("The last line must start with 'Answer:' and list them with commas.")
        return "\n".join(lines), answer

    def extract(self, text: str) -> str | None:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if not lines:
            return None
        m = _ANSWER_LINE.match(lines[-1])
        if not m:
            return None
        items = [w.strip().strip("`.").lower() for w in m.group(1).split(",")]
        return ", ".join(w for w in items if w)

    def decontam_text(self, problem: Problem) -> str:
        return " ".join(problem.meta["words"])
