"""Prompt hygiene: exact and near-duplicate detection, n-gram decontamination across splits.

- ``normalize``: lower case, punctuation dropped, whitespace collapsed; two prompts with the same
  normal form are exact duplicates.
- ``NearDupIndex``: Jaccard similarity of word 3-shingles, found through an inverted index over
  shingles (shingles shared by many texts are skipped as boilerplate when looking for candidates).
- ``NgramIndex``: word n-grams of the held-out prompts; a train prompt that shares any one of them
  is contaminated.
"""

from __future__ import annotations

import re
from collections import defaultdict

_PUNCT = re.compile(r"[^\w\s<>=+\-*/×]", re.UNICODE)
_WORD = re.compile(r"\S+")


def normalize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def words(text: str) -> list[str]:
    return _WORD.findall(normalize(text))


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word ``n``-grams of ``text`` (none when it has fewer than ``n`` words)."""
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def shingles(text: str, k: int = 3) -> set[tuple[str, ...]]:
    """Word ``k``-shingles; a text shorter than ``k`` words is one shingle."""
    w = words(text)
    if len(w) < k:
        return {tuple(w)} if w else set()
    return {tuple(w[i:i + k]) for i in range(len(w) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class NgramIndex:
    """The n-grams of a set of (held-out) texts, for checking other texts against them."""

    def __init__(self, n: int):
        self.n = n
        self.grams: set[tuple[str, ...]] = set()

    def add(self, text: str) -> None:
        self.grams |= ngrams(text, self.n)

    def overlap(self, text: str) -> tuple[str, ...] | None:
        """One shared n-gram, or None."""
        for g in ngrams(text, self.n):
            if g in self.grams:
                return g
        return None


class NearDupIndex:
    """Texts added so far; ``find`` returns the index of one with Jaccard >= threshold, or None."""

    def __init__(self, threshold: float = 0.9, k: int = 3, common: int = 50):
        self.threshold, self.k, self.common = threshold, k, common
        self.sets: list[set[tuple[str, ...]]] = []
        self.postings: dict[tuple[str, ...], list[int]] = defaultdict(list)

    def find(self, text: str) -> int | None:
        sh = shingles(text, self.k)
        if not sh:
            return None
        common = [s for s in sh if len(self.postings.get(s, ())) > self.common]
        # A text with Jaccard >= t shares at least t * |sh| shingles, so at least that many minus the
        # common ones among the rare shingles; when that bound is not positive, check every text that
        # shares any shingle.
        need = self.threshold * len(sh) - len(common)
        if need <= 0:
            cands = sorted({i for s in sh for i in self.postings.get(s, ())})
        else:
            counts: dict[int, int] = defaultdict(int)
            for s in sh:
                post = self.postings.get(s)
                if post and len(post) <= self.common:
                    for i in post:
                        counts[i] += 1
            cands = [i for i, c in counts.items() if c >= need]
        for i in cands:
            if jaccard(sh, self.sets[i]) >= self.threshold:
                return i
        return None

    def add(self, text: str) -> int:
        sh = shingles(text, self.k)
        self.sets.append(sh)
        idx = len(self.sets) - 1
        for s in sh:
            self.postings[s].append(idx)
        return idx
