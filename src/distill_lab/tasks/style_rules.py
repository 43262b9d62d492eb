"""Style as rules of voice that hold across varied answers, not one answer frame.

``house_style`` (``style.py``) scores six layout features of a single fixed frame (``In short:``, three
labelled bullets, ``Bottom line:``), which measures a template, close to format. ``style_rules``
keeps the everyday "explain a thing" prompts but the teacher's answers vary in wording, sentence
order and length (several phrasings per part, chosen per prompt), while five rules of its voice,
never stated in any prompt, hold in every answer:

1. ``no_contractions``: "it is", never "it's" / "don't";
2. ``second_person``: it speaks to the reader ("you");
3. ``short_sentences``: no sentence longer than 20 words;
4. ``prose``: no bullets, numbered lists, headings or bold;
5. ``closing_question``: it ends with a question to the reader.

Scores: ``score`` (the voice; ``score_retention`` in the metrics is voice retention) = the share of
the five rules an answer follows, times how much of a full answer's body is written in the voice:
``min(1, voiced / 3)``, where ``voiced`` counts the distinct statements (non-question sentences of at
least 4 words, none with a contraction or over 20 words) before the closing question; every teacher
answer has three (what / where / why). The voice is a way of writing a whole answer, so one template
sentence cannot max it out: the closing question "Do you own one yourself?" alone follows all five
rules and scores 0 (no statement in the voice), a copied question after one statement scores 1/3.
``verify`` (accuracy) = content only: the answer names the thing and at least one content word of
what it is, where it is found or what it is for. So a student that copies the voice but says nothing,
and one that knows the thing in another voice, are told apart. Held-out things are never seen in
training (test: other things; ood: other things in new phrasings).
"""

from __future__ import annotations

import hashlib
import re

from distill_lab.tasks.base import Problem, effort_level, register
from distill_lab.tasks.style import OOD_THINGS, THINGS, ThingQuestions, article

RULES = ("no_contractions", "second_person", "short_sentences", "prose", "closing_question")
_CONTRACTION = re.compile(r"\b\w+'(?:t|s|re|ve|ll|d|m)\b", re.I)
_LIST = re.compile(r"^\s*(?:[-*•]\s|\d+[.)]\s|#)", re.M)
_SENT = re.compile(r"[^.!?]+[.!?]?")
_STOP = {"that", "with", "from", "your", "they", "them", "into", "without", "often", "most", "their", "which",
         "where", "when", "what", "keep", "make", "made", "have", "been", "this", "near"}

WHAT = ("{A} {t} is {what}.", "Picture {what}: that is {a} {t}.", "You can think of {a} {t} as {what}.")
WHERE = ("You will usually find one {where}.", "Most of them sit {where}.", "You can spot one {where}.")
WHY = ("People use it {why}.", "Its whole point is {why}.", "You would reach for one {why}.")
CLOSE = ("Have you seen one lately?", "Would you like to know how it works?", "Where have you come across one?",
         "Do you own one yourself?")


def rule_checks(text: str) -> dict[str, bool]:
    """Which of the five voice rules ``text`` follows."""
    body = text.strip()
    sentences = _sentences(body)
    return {
        "no_contractions": bool(body) and not _CONTRACTION.search(body.replace("’", "'")),
        "second_person": bool(re.search(r"\byou(r|rs|rself)?\b", body, re.I)),
        "short_sentences": bool(sentences) and all(len(s.split()) <= 20 for s in sentences),
        "prose": bool(body) and not _LIST.search(body) and "**" not in body,
        "closing_question": body.endswith("?"),
    }


MIN_VOICED = 3  # statements in the voice that a full answer has (what, where, why)


def _sentences(text: str) -> list[str]:
    return [x.strip() for x in _SENT.findall(text.strip()) if x.strip()]


def voiced_statements(text: str) -> int:
    """How many distinct statements (non-question sentences of >= 4 words) follow the per-sentence
    rules (no contraction, at most 20 words); repeats of one sentence count once."""
    seen = set()
    for x in _sentences(text):
        words = x.split()
        if x.endswith("?") or len(words) < 4 or len(words) > 20 or _CONTRACTION.search(x.replace("’", "'")):
            continue
        if _LIST.search(x) or "**" in x:
            continue
        seen.add(" ".join(w.lower() for w in words))
    return len(seen)


def voice_score(text: str) -> float:
    """Share of the five rules followed x share of a full body written in the voice (``MIN_VOICED``)."""
    checks = rule_checks(text)
    return sum(checks.values()) / len(checks) * min(1.0, voiced_statements(text) / MIN_VOICED)


def content_words(thing: str) -> set[str]:
    what, where, why = THINGS.get(thing) or OOD_THINGS[thing]
    words = re.findall(r"[a-z]+", f"{what} {where} {why}".lower())
    return {w for w in words if len(w) > 3 and w not in _STOP}


def _pick(options: tuple[str, ...], key: str) -> str:
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


@register
class StyleRules(ThingQuestions):
    """The prompts of ``house_style`` (same things, splits and phrasings); graded by the voice rules."""

    name = "style_rules"

    def answer(self, problem: Problem) -> str:
        """The teacher's answer: varied per prompt in wording and order, constant in the five rules."""
        t = problem.meta["thing"]
        what, where, why = THINGS.get(t) or OOD_THINGS[t]
        a = article(t)
        key = problem.prompt
        fill = {"t": t, "a": a, "A": a.capitalize(), "what": what, "where": where, "why": why}
        parts = [_pick(WHAT, key + "/what").format(**fill)]
        rest = [_pick(WHERE, key + "/where").format(**fill), _pick(WHY, key + "/why").format(**fill)]
        if int(hashlib.sha256((key + "/order").encode()).hexdigest(), 16) % 2:
            rest.reverse()
        return " ".join([*parts, *rest, _pick(CLOSE, key + "/close")])

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        t, level = problem.meta["thing"], effort_level(effort)
        answer = self.answer(problem)
        if level == "low":
            return f"Explain {t}: what, where, why.", answer
        plan = [f"Topic: {t}. Say what it is, where it is found and what it is for.",
                "Voice: plain prose that speaks to the reader, short sentences, no contractions, "
                "and a closing question."]
        if level == "high":
            what, where, why = THINGS.get(t) or OOD_THINGS[t]
            plan += [f"What: {what}.", f"Where: {where}.", f"Why: {why}.",
                     "Check: every sentence under 20 words, no list, ends with '?'."]
        return "\n".join(plan), answer

    def extract(self, text: str) -> str | None:
        """The thing the answer is about: the first known thing it names, or None."""
        low = text.lower()
        hits = [(low.find(t), t) for t in (*THINGS, *OOD_THINGS) if t in low]
        return min(hits)[1] if hits else None

    def verify(self, text: str, reference: str | None) -> bool:
        """Content: names the thing and at least one content word of what / where / why."""
        if not reference or reference not in (*THINGS, *OOD_THINGS):
            return False
        words = set(re.findall(r"[a-z]+", text.lower()))
        return reference in words and bool(words & content_words(reference))

    def score(self, text: str, reference: str | None, teacher_text: str | None = None) -> float:
        """The voice: rules followed x share of a full body in the voice (``voice_score``)."""
        return voice_score(text)
