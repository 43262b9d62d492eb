"""Built-in verifiable task families. Importing this package registers every family module."""

from distill_lab.tasks import arithmetic  # noqa: F401
from distill_lab.tasks.base import CATEGORIES, SPLITS, Problem, TaskFamily, family_names, get_family, register

__all__ = ["CATEGORIES", "SPLITS", "Problem", "TaskFamily", "family_names", "get_family", "register"]
