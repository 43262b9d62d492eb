"""The task-family interface: generator, oracle trace, answer extraction, verifier.

A family is one module in ``distill_lab/tasks/`` that defines a ``TaskFamily`` subclass decorated
with ``@register``; recipes name it (``recipe.families[].name``) with ``params`` passed to its
constructor.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

CATEGORIES = ("style", "format", "knowledge", "reasoning", "edge_case")
SPLITS = ("train", "test", "ood")


@dataclass(frozen=True)
class Problem:
    """One prompt with what is needed to check an answer to it."""

    prompt_id: str  # stable across teachers and efforts: hash of (family, split, prompt text)
    task: str  # family name
    category: str  # one of CATEGORIES
    split: str  # one of SPLITS
    prompt: str  # the user message
    reference: str | None  # expected final answer (JSON text for structured answers), None if unverifiable
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def messages(self) -> list[dict[str, Any]]:
        """The prompt as OpenAI-style messages (system first when there is one)."""
        msgs: list[dict[str, Any]] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": self.prompt})
        return msgs


def make_prompt_id(task: str, split: str, prompt: str) -> str:
    return hashlib.sha256(f"{task}\x1f{split}\x1f{prompt}".encode()).hexdigest()[:16]


class TaskFamily(ABC):
    """Generator + oracle + verifier of one family of verifiable problems."""

    name: ClassVar[str]
    category: ClassVar[str]

    @abstractmethod
    def generate(self, split: str, n: int, rng: random.Random) -> list[Problem]:
        """``n`` distinct problems of ``split`` (``ood`` lies beyond the train distribution)."""

    @abstractmethod
    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        """(reasoning, final answer text): a correct step-by-step solution; detail follows ``effort``."""

    @abstractmethod
    def extract(self, text: str) -> str | None:
        """The final answer in a model's answer text (thinking already stripped), or None."""

    def verify(self, text: str, reference: str | None) -> bool:
        """Whether ``text`` (an answer, thinking stripped) states the reference answer."""
        got = self.extract(text)
        return reference is not None and got is not None and got == reference


_REGISTRY: dict[str, type[TaskFamily]] = {}


def register(cls: type[TaskFamily]) -> type[TaskFamily]:
    assert cls.category in CATEGORIES, f"{cls.__name__}.category {cls.category!r} not in {CATEGORIES}"
    assert cls.name not in _REGISTRY, f"task family {cls.name!r} registered twice"
    _REGISTRY[cls.name] = cls
    return cls


def family_names() -> list[str]:
    from distill_lab import tasks  # noqa: F401  (imports every built-in family module)

    return sorted(_REGISTRY)


def get_family(name: str, **params: Any) -> TaskFamily:
    from distill_lab import tasks  # noqa: F401

    if name not in _REGISTRY:
        raise KeyError(f"unknown task family {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**params)
