"""Built-in verifiable task families. Importing this package registers every family module.

reasoning: addition, multiplication, ordering, word_problems; format: json_record, answer_line;
knowledge: capitals; style: house_style; edge_case: edge_cases; external prompts: freeform.
A new family is one module with a ``@register``-ed ``TaskFamily`` subclass, imported here.
"""

from distill_lab.tasks import (  # noqa: F401
    arithmetic,
    edge_cases,
    formats,
    freeform,
    knowledge,
    ordering,
    style,
    word_problems,
)
from distill_lab.tasks.base import CATEGORIES, SPLITS, Problem, TaskFamily, family_names, get_family, register

BUILTIN_FAMILIES = ("addition", "multiplication", "ordering", "word_problems", "json_record", "answer_line",
                    "capitals", "house_style", "edge_cases")

__all__ = ["BUILTIN_FAMILIES", "CATEGORIES", "SPLITS", "Problem", "TaskFamily", "family_names", "get_family",
           "register"]
