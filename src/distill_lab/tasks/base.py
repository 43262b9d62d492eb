"""The task-family interface: generator, oracle trace, answer extraction, verifier, scorer.

A family is one module in ``distill_lab/tasks/`` that defines a ``TaskFamily`` subclass decorated
with ``@register`` (and is imported in ``tasks/__init__.py``); recipes name it
(``recipe.families[].name``) with ``params`` passed to its constructor.

What a family implements:
  ``stream(split, rng)``   an iterator of problems of ``split``, in an order fixed by ``rng`` (a
                           finite iterator means a finite problem space; the recipe reports a
                           shortfall). ``generate(split, n, rng)`` takes the first ``n`` of it.
  ``oracle(problem, effort)`` -> (reasoning, final answer): a correct solution whose trace detail
                           follows ``effort`` (low / medium / high; xhigh and max read as high).
  ``extract(text)``        the canonical final answer in an answer text (thinking stripped), or None.
  ``verify(text, reference)`` whether the answer states the reference (default: extract == reference).
  ``score(text, reference, teacher_text)`` the evaluation hook: a float in [0, 1] (or a bool) for one
                           answer. Default: ``float(verify(text, reference))``. Families where plain
                           accuracy does not fit (``house_style``) compare the answer's features with
                           the teacher's answer to the same prompt.
  ``coverage(train, heldout)`` optional: how much of what held-out problems need train holds.
  ``difficulty(problem)``   optional: a number that grows with how hard the problem is (None: not stated).
  ``decontam_text(problem)`` the text compared across splits for n-gram decontamination and
                           near-duplicate removal (default: the prompt). Templated families return
                           their instance-specific part so shared boilerplate is not an overlap.

Controls: a task a probe emits beside itself on held-out splits (facts never taught, a hint removed)
sets ``control_of`` to the probe's name. Evaluation reports it per family but never inside a category
figure (``is_control``): a category is what its probes measure, a control is read against its probe.

``extract``/``verify``/``score`` never depend on constructor params: evaluation calls them on
``get_family(row["task"])`` without the recipe's params.

Families outside this package: a module that registers them is imported when it is named in the
environment variable ``DISTILL_LAB_TASK_MODULES`` (comma-separated module names) or declared by an
installed package under the entry-point group ``distill_lab.tasks``
(``[project.entry-points."distill_lab.tasks"] my_family = "my_pkg.my_family"``).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from typing import Any, ClassVar

from distill_lab.vocab import CATEGORIES, DEFAULT_EFFORTS, SPLITS  # noqa: F401  (re-exported)

EFFORTS = DEFAULT_EFFORTS


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


def effort_level(effort: str) -> str:
    """Map any effort name to the oracle's three trace levels (xhigh and max read as high)."""
    if effort in EFFORTS:
        return effort
    if effort in ("xhigh", "max"):
        return "high"
    raise ValueError(f"teacher.effort: unknown effort {effort!r}; expected low, medium, high, xhigh or max")


_FINAL = re.compile(r"answer is\s*[:*]*\s*", re.I)


def final_clause(text: str) -> str | None:
    """The text after the last "answer is" (up to the end of that line), or None."""
    hits = list(_FINAL.finditer(text))
    if not hits:
        return None
    rest = text[hits[-1].end():]
    return rest.split("\n", 1)[0].strip()


class TaskFamily(ABC):
    """Generator + oracle + verifier of one family of verifiable problems."""

    name: ClassVar[str]
    category: ClassVar[str]
    control_of: ClassVar[str | None] = None  # the probe this task is a control of (kept out of categories)

    @abstractmethod
    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        """Problems of ``split`` in an order fixed by ``rng`` (``ood`` lies beyond the train distribution)."""

    def generate(self, split: str, n: int, rng: random.Random) -> list[Problem]:
        """The first ``n`` distinct problems of ``stream(split, rng)``; raises if the space is smaller."""
        if split not in SPLITS:
            raise ValueError(f"{self.name}: unknown split {split!r}; expected one of {SPLITS}")
        out, seen = [], set()
        for p in self.stream(split, rng):
            if p.prompt not in seen:
                seen.add(p.prompt)
                out.append(p)
            if len(out) == n:
                return out
        if len(out) < n:
            raise ValueError(f"{self.name}: asked for {n} distinct {split} problems, only {len(out)} exist")
        return out

    def _problem(self, split: str, prompt: str, reference: str | None, **meta: Any) -> Problem:
        return Problem(prompt_id=make_prompt_id(self.name, split, prompt), task=self.name,
                       category=self.category, split=split, prompt=prompt, reference=reference, meta=meta)

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

    def score(self, text: str, reference: str | None, teacher_text: str | None = None) -> float:
        """Evaluation score of one answer in [0, 1]; default: 1.0 when ``verify`` accepts it."""
        return float(self.verify(text, reference))

    def difficulty(self, problem: Problem) -> float | None:
        """How hard the problem is within this family (larger: harder), for rules that treat easy and hard
        problems differently (``recipe.effort_assign=difficulty``); None: the family states none."""
        return None

    def decontam_text(self, problem: Problem) -> str:
        """The text compared across splits for n-gram decontamination (default: the prompt)."""
        return problem.prompt

    def coverage(self, train: list[Problem], heldout: list[Problem]) -> dict[str, Any] | None:
        """What the held-out problems need from training and how much of it train holds (e.g. facts
        taught); None where held-out problems need nothing specific. Reported in the recipe stats."""
        return None


def distinct(it: Iterator[Problem], limit: int | None = None) -> Iterator[Problem]:
    """Drop problems whose prompt was already yielded (stop after ``limit`` consecutive repeats)."""
    seen: set[str] = set()
    misses = 0
    for p in it:
        if p.prompt in seen:
            misses += 1
            if limit is not None and misses >= limit:
                return
            continue
        misses = 0
        seen.add(p.prompt)
        yield p


_REGISTRY: dict[str, type[TaskFamily]] = {}


def register(cls: type[TaskFamily]) -> type[TaskFamily]:
    assert cls.category in CATEGORIES, f"{cls.__name__}.category {cls.category!r} not in {CATEGORIES}"
    assert cls.name not in _REGISTRY, f"task family {cls.name!r} registered twice"
    _REGISTRY[cls.name] = cls
    return cls


PLUGIN_ENV = "DISTILL_LAB_TASK_MODULES"
_LOADED_PLUGINS: set[str] = set()


@lru_cache(maxsize=1)
def _entry_point_modules() -> tuple[str, ...]:
    try:
        from importlib.metadata import entry_points

        return tuple(ep.value.split(":")[0] for ep in entry_points(group="distill_lab.tasks"))
    except Exception:  # noqa: BLE001 (broken metadata of an unrelated package must not stop the lab)
        return ()


def _load_families() -> None:
    """Import the plugin modules (entry points, ``DISTILL_LAB_TASK_MODULES``). The built-in families are
    registered already: Python runs the package's ``__init__`` (which imports every built-in family
    module) before any of its modules, this one included, so this module need not import the package
    that imports it (no import circle between files: tests/test_architecture.py)."""
    modules = [m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    for mod in [*_entry_point_modules(), *modules]:
        if mod in _LOADED_PLUGINS:
            continue
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise ImportError(f"{PLUGIN_ENV} / entry point names task module {mod!r}, which cannot be imported: {e}") from e
        _LOADED_PLUGINS.add(mod)


def family_names() -> list[str]:
    _load_families()
    return sorted(_REGISTRY)


def family_class(name: str) -> type[TaskFamily]:
    _load_families()
    if name not in _REGISTRY:
        raise KeyError(f"unknown task family {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def is_control(task: str | None) -> bool:
    """Whether ``task`` is a registered control of a probe (unknown names and suites are not)."""
    _load_families()
    cls = _REGISTRY.get(task or "")
    return cls is not None and cls.control_of is not None


def get_family(name: str, **params: Any) -> TaskFamily:
    cls = family_class(name)
    try:
        return cls(**params)
    except TypeError as e:  # an unknown or missing param
        raise ValueError(f"task family {name!r}: bad params {params}: {e}") from None


def first(it: Iterator[Problem], n: int) -> list[Problem]:
    return list(islice(it, n))
