"""Built-in verifiable task families. Importing this package registers every family module.

reasoning: addition, multiplication, ordering, word_problems; format: json_record, answer_line;
knowledge: capitals; style: house_style; edge_case: edge_cases; external prompts: freeform.
Probes that separate what a category score is made of (``recipe=probes``), with their controls:
composition (chains of two trained operations; OOD a three-step chain at trained sizes); json_fields,
sorted_words (format compliance apart from content); capital_facts (+ capital_facts_untaught,
capital_facts_reverse, capital_facts_train_phrasing); style_rules (the voice over the whole answer,
content apart); edge_checks (+ edge_checks_unannounced: the same held-out items without the hint).
Controls set ``control_of`` and stay out of category figures (``is_control``).
reasoning_gym: reasoning-gym's datasets and verifiers (optional extra ``tasks``).
A new family is one module with a ``@register``-ed ``TaskFamily`` subclass, imported here.
"""

from distill_lab.tasks import (  # noqa: F401
    arithmetic,
    composition,
    edge_cases,
    edge_controls,
    fact_controls,
    format_content,
    formats,
    freeform,
    knowledge,
    ordering,
    reasoning_gym_tasks,
    style,
    style_rules,
    word_problems,
)
from distill_lab.tasks.base import (
    CATEGORIES,
    SPLITS,
    Problem,
    TaskFamily,
    family_names,
    get_family,
    is_control,
    register,
)

BUILTIN_FAMILIES = ("addition", "multiplication", "ordering", "word_problems", "json_record", "answer_line",
                    "capitals", "house_style", "edge_cases")
# the probes a recipe names (recipe=probes), and the control tasks they emit on held-out splits
PROBE_FAMILIES = ("composition", "json_fields", "sorted_words", "capital_facts", "style_rules", "edge_checks")
CONTROL_TASKS = {"capital_facts": ("capital_facts_untaught", "capital_facts_reverse", "capital_facts_train_phrasing"),
                 "edge_checks": ("edge_checks_unannounced",)}

__all__ = ["BUILTIN_FAMILIES", "CONTROL_TASKS", "PROBE_FAMILIES", "CATEGORIES", "SPLITS", "Problem", "TaskFamily", "family_names", "get_family",
           "is_control", "register"]
