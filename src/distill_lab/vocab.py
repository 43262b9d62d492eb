"""The project's shared words, defined once: teacher efforts, dataset splits, capability categories."""

from __future__ import annotations

from enum import Enum


class Effort(str, Enum):
    """Reasoning effort of the teacher: the ablation axis (contract). Ordered from least to most."""

    low = "low"
    medium = "medium"
    high = "high"
    xhigh = "xhigh"
    max = "max"


EFFORTS = tuple(e.value for e in Effort)  # in order
DEFAULT_EFFORTS = ("low", "medium", "high")  # what every built-in teacher takes
SPLITS = ("train", "test", "ood")  # where a prompt goes
HELD_OUT_SPLITS = ("test", "ood")  # what eval measures
CATEGORIES = ("style", "format", "knowledge", "reasoning", "edge_case")  # the seed's capability categories


def effort_rank(effort: str | None) -> tuple[int, str]:
    """Sort key: efforts in their order, unknown ones after them."""
    e = str(effort)
    return (EFFORTS.index(e) if e in EFFORTS else len(EFFORTS), e)
