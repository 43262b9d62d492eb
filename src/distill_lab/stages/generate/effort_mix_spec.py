"""The effort-mix spec (``recipe.effort_mix``): parsing and the checks a config runs at composition time.

Kept apart from the dealing (``effort_mix.py``, which uses ``recipe.py``) so that the recipe config can
validate a spec without importing the recipe that imports the config. What a mix means: ``effort_mix.py``."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from distill_lab.errors import ConfigError
from distill_lab.vocab import EFFORTS

if TYPE_CHECKING:
    from distill_lab.teachers.config import TeacherConfig

KEY = "recipe.effort_mix"
RULES = ("random", "difficulty")
MIXED_SPLITS = ("train",)
_TERM = re.compile(r"^\s*([a-z]+)\s*[@:]\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class EffortMix:
    shares: tuple[tuple[str, float], ...]  # (effort, share) in effort order, shares summing to 1

    @property
    def efforts(self) -> list[str]:
        return [e for e, _ in self.shares]

    @property
    def weights(self) -> list[float]:
        return [w for _, w in self.shares]

    @property
    def top(self) -> str:
        """The most detailed effort of the mix (held-out prompts are answered at it)."""
        return self.efforts[-1]

    @property
    def label(self) -> str:
        """The run's effort label: ``mix(low:0.5,high:0.5)``."""
        return "mix(" + ",".join(f"{e}:{round(w, 4):g}" for e, w in self.shares) + ")"


def parse_mix(spec: str) -> EffortMix:
    """``"low@0.5+high@0.5"`` (or ``:`` and ``,``) -> ``EffortMix``; ``ConfigError`` naming the field."""
    terms = [t for t in re.split(r"[+,]", str(spec)) if t.strip()]
    parsed: dict[str, float] = {}
    for t in terms:
        m = _TERM.match(t)
        if not m:
            raise ConfigError(f"{KEY}: cannot read {t.strip()!r} in {spec!r}; write effort@share terms joined by '+', "
                              "e.g. low@0.5+high@0.5")
        effort, share = m.group(1), float(m.group(2))
        if effort not in EFFORTS:
            raise ConfigError(f"{KEY}: unknown effort {effort!r} in {spec!r}; expected one of {', '.join(EFFORTS)}")
        if effort in parsed:
            raise ConfigError(f"{KEY}: effort {effort!r} appears twice in {spec!r}")
        if share <= 0:
            raise ConfigError(f"{KEY}: the share of {effort!r} must be > 0 in {spec!r}")
        parsed[effort] = share
    if len(parsed) < 2:
        raise ConfigError(f"{KEY}: {spec!r} names {len(parsed)} effort(s); a mix needs at least two (for one "
                          "effort, set teacher.effort and leave recipe.effort_mix null)")
    total = sum(parsed.values())
    return EffortMix(tuple((e, parsed[e] / total) for e in EFFORTS if e in parsed))


def check_recipe_mix(spec: str | None, rule: str, duplicate: bool) -> EffortMix | None:
    """The recipe's own checks (``RecipeConfig.__post_init__``)."""
    if rule not in RULES:
        raise ConfigError(f"recipe.effort_assign: must be {' or '.join(RULES)}, got {rule!r}")
    if spec is None or str(spec).strip() in ("", "null", "none"):
        return None
    mix = parse_mix(spec)
    if duplicate and len({round(w, 9) for w in mix.weights}) > 1:
        raise ConfigError(f"recipe.effort_mix_duplicate: true answers every train prompt at every effort of the "
                          f"mix, so its shares must be equal; {spec!r} asks {mix.label}")
    if duplicate and rule != "random":
        raise ConfigError("recipe.effort_assign: difficulty deals efforts over prompts, which "
                          "recipe.effort_mix_duplicate=true does not do (every prompt gets every effort)")
    return mix


def effort_teacher_config(teacher: TeacherConfig, effort: str) -> TeacherConfig:
    """``teacher`` at ``effort``, validated as ``teacher.effort=<effort>`` would be (the error names the mix)."""
    from distill_lab.vocab import Effort

    try:
        return dataclasses.replace(teacher, effort=Effort(effort))
    except ConfigError as e:
        raise ConfigError(f"{KEY}: effort {effort!r} does not fit the teacher: {e}") from None


def check_teacher_mix(spec: str | None, teacher: TeacherConfig) -> None:
    """Every effort of the mix is one the teacher takes, with what it needs (an Anthropic thinking budget
    below max_tokens...): refused before anything is sent (``Config.__post_init__``)."""
    if spec is None or str(spec).strip() in ("", "null", "none"):
        return
    for effort in parse_mix(spec).efforts:
        effort_teacher_config(teacher, effort)
