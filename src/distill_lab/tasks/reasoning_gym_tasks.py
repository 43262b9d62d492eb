"""reasoning-gym datasets as a task family (optional extra ``tasks``: ``pip install distill_lab[tasks]``).

reasoning-gym (PyPI ``reasoning-gym``) generates procedural, verifiable problems (about a hundred
datasets: arithmetic chains, logic, puzzles, string manipulation, ...) with difficulty knobs, and scores
an answer with the dataset's own ``score_answer``. This family uses both, rather than a hand-written
generator and checker:

    recipe.families: [{name: reasoning_gym, params: {dataset: chain_sum,
        config: {min_terms: 2, max_terms: 3, min_digits: 2, max_digits: 2},      # train / test
        ood_config: {min_terms: 4, max_terms: 5, min_digits: 2, max_digits: 2}}}] # ood: harder knobs

- prompt: the dataset's question, plus ``End with: The answer is <answer>.``;
- reference: JSON of the dataset name and the whole entry (question, answer, metadata), so that
  ``verify`` needs no constructor params (evaluation calls it as ``get_family(row["task"])``): it calls
  ``score_answer`` of that dataset on the text after the last "answer is" and accepts a full score;
- oracle: reasoning-gym gives answers, not worked solutions. The oracle writes effort-graded traces for
  the datasets it has a tracer for (``chain_sum``); for any other dataset it stops with an error that
  names the dataset: such prompts need a real teacher (``teacher=anthropic`` / ``openai_compat``), which
  writes its own reasoning, and are then verified here.
The split's problems come from ``create_dataset(dataset, seed=<drawn from the split's rng>, **config)``,
so a recipe seed fixes them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from distill_lab.tasks.arithmetic import addition_trace
from distill_lab.tasks.base import Problem, TaskFamily, effort_level, final_clause, register

INSTRUCTION = "\nEnd with: The answer is <answer>."
TRACED = ("chain_sum",)


def _rg():
    try:
        import reasoning_gym
    except ImportError as e:
        raise ImportError("task family reasoning_gym needs the reasoning-gym package: "
                          "pip install 'distill_lab[tasks]' (or reasoning-gym)") from e
    return reasoning_gym


@cache
def _scorer(dataset: str):
    """A dataset instance whose ``score_answer`` reads only the entry it is given."""
    return _rg().create_dataset(dataset, size=1, seed=0)


def chain_sum_trace(expression: str, effort: str) -> str:
    """Running totals of ``a + b - c ...``: low one line, medium each step, high each addition by columns."""
    tokens = expression.split()
    total = int(tokens[0])
    level = effort_level(effort)
    value = eval_chain(expression)
    if level == "low":
        return f"{expression} = {value}."
    lines = []
    for op, term in zip(tokens[1::2], tokens[2::2], strict=True):
        t = int(term)
        new = total + t if op == "+" else total - t
        if level == "high" and op == "+" and total >= 0 and t >= 0:
            lines.append(addition_trace(total, t, "medium"))
        else:
            lines.append(f"{total} {op} {t} = {new}.")
        total = new
    return "\n".join([*lines, f"So {expression} = {value}."])


def eval_chain(expression: str) -> int:
    tokens = expression.split()
    total = int(tokens[0])
    for op, term in zip(tokens[1::2], tokens[2::2], strict=True):
        total = total + int(term) if op == "+" else total - int(term)
    return total


@register
class ReasoningGym(TaskFamily):
    name = "reasoning_gym"
    category = "reasoning"

    def __init__(self, dataset: str = "chain_sum", config: dict[str, Any] | None = None,
                 ood_config: dict[str, Any] | None = None):
        from reasoning_gym.factory import DATASETS

        _rg()
        if dataset not in DATASETS:
            raise ValueError(f"reasoning_gym: unknown dataset {dataset!r}; reasoning-gym has e.g. "
                             f"{', '.join(sorted(DATASETS)[:8])}, ...")
        self.dataset = dataset
        self.config = dict(config or {})
        self.ood_config = dict(ood_config if ood_config is not None else self.config)

    def stream(self, split: str, rng: random.Random) -> Iterator[Problem]:
        cfg = self.ood_config if split == "ood" else self.config
        batch = 0
        while batch < 50:  # 50 x 200 entries; duplicates are dropped by the recipe
            ds = _rg().create_dataset(self.dataset, size=200, seed=rng.randrange(2**31), **cfg)
            for entry in ds:
                ref = json.dumps({"dataset": self.dataset, "entry": entry}, default=list, sort_keys=True)
                yield self._problem(split, entry["question"] + INSTRUCTION, ref, answer=entry["answer"],
                                    metadata=entry.get("metadata", {}))
            batch += 1

    def oracle(self, problem: Problem, effort: str) -> tuple[str, str]:
        if self.dataset not in TRACED:
            raise ValueError(f"reasoning_gym: dataset {self.dataset!r} has no oracle trace (traced: "
                             f"{', '.join(TRACED)}); use a real teacher for it")
        expression = problem.meta["metadata"]["expression"]
        return chain_sum_trace(expression, effort), f"The answer is {problem.meta['answer']}."

    def extract(self, text: str) -> str | None:
        clause = final_clause(text)
        if clause is None:
            lines = [ln for ln in text.strip().splitlines() if ln.strip()]
            clause = lines[-1] if lines else None
        return re.sub(r"[.\s]+$", "", clause).strip() if clause else None

    def verify(self, text: str, reference: str | None) -> bool:
        got = self.extract(text)
        if got is None or not reference:
            return False
        ref = json.loads(reference)
        return float(_scorer(ref["dataset"]).score_answer(got, ref["entry"])) >= 1.0

    def decontam_text(self, problem: Problem) -> str:
        return problem.prompt.removesuffix(INSTRUCTION)
