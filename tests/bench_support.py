"""Helpers for the benchmark-suite tests: the fixture files, and a tiny student that has memorized one
answer in thinking format, with a stop word inside its thinking and after its answer.

After training it says ``<think>\\nhalf END\\n</think>\\n\\nThe answer is $\\boxed{\\frac{1}{2}}$. END
extra`` to any benchmark prompt, so its grades are known in advance: right exactly where the gold is
one half in any form (``\\frac{1}{2}``, ``0.5``, ``1/2``).
"""

from __future__ import annotations

import os
from pathlib import Path

from distill_lab.config import StudentConfig
from tests.eval_support import train_memorizer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "benchmarks"
FILES = {"gsm8k": "gsm8k.jsonl", "math500": "math500.jsonl", "aime24": "aime24.jsonl", "aime25": "aime25.jsonl",
         "gpqa_diamond": "gpqa_diamond.csv", "ifeval": "ifeval.jsonl"}
THINKING, ANSWER = "half END", "The answer is $\\boxed{\\frac{1}{2}}$. END extra"
MEMORIZED = f"<think>\n{THINKING}\n</think>\n\n{ANSWER}"


def fixture(name: str) -> Path:
    return FIXTURES / FILES[name]


def train_bench_memorizer(student_cfg: StudentConfig, out_dir: Path, questions: list[str], steps: int = 40) -> Path:
    """Full fine-tuning of the tiny student until it answers MEMORIZED to the given user messages."""
    return train_memorizer(student_cfg, out_dir, steps, questions=questions, content=ANSWER, thinking=THINKING)


def bench_memorizer_dir(student_cfg: StudentConfig) -> Path:
    """The memorizing student for the math fixtures (gsm8k, math500), trained once per test session."""
    from distill_lab.stages.evaluate.suites.config import SuiteConfig
    from distill_lab.stages.evaluate.suites.loader import suite_prompts

    out = Path(os.environ["DISTILL_LAB_CACHE"]) / "bench-memorizer-v1"
    if not (out / "config.json").is_file():
        questions = []
        for name in ("gsm8k", "math500"):
            sc = SuiteConfig(name=name, path=str(fixture(name)),
                             prompt_template="{question}\nPlease reason step by step, and put your final answer "
                                             "within \\boxed{}.")
            questions += [p.user_text for p in suite_prompts(sc)[0][:2]]  # two of each: it learns to ignore them
        train_bench_memorizer(student_cfg, out, questions)
    return out
