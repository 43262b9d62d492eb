"""experiments/effort_x_size/column_errors.py: the parser finds no error in the oracle's own traces and
finds the misread digit and the wrong carry it is meant to count."""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
from pathlib import Path

from distill_lab.tasks.base import get_family

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("column_errors", ROOT / "experiments/effort_x_size/column_errors.py")
column_errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(column_errors)


def _oracle_traces(n: int = 40):
    fam = get_family("addition", digits=3, ood_digits=4)
    for split in ("test", "ood"):
        for p in itertools.islice(fam.stream(split, random.Random(0)), n):
            thinking, answer = fam.oracle(p, "high")
            yield p.prompt, f"<think>\n{thinking}\n</think>\n\n{answer}"


def test_the_oracles_high_effort_traces_have_no_column_error():
    traces = list(_oracle_traces())
    assert len(traces) == 80
    for prompt, output in traces:
        assert column_errors.column_errors(prompt, output) == {"copy": False, "arithmetic": False, "parsed": True}


def test_a_misread_digit_and_a_wrong_carry_are_counted(tmp_path):
    prompt = "What is 423 + 301?"
    misread = ("Column 1: 3 + 1 = 4. Write 4, carry 0.\nColumn 2: 2 + 0 + 1 = 3. Write 3, carry 0.\n"
               "Column 3: 4 + 0 + 1 = 5. Write 5, carry 0.")  # a student's answer: 534
    assert column_errors.column_errors(prompt, misread) == {"copy": True, "arithmetic": False, "parsed": True}
    carry = "Column 1: 3 + 1 = 4. Write 4, carry 1.\nColumn 2: 2 + 0 + 1 = 3. Write 3, carry 0."
    assert column_errors.column_errors(prompt, carry) == {"copy": False, "arithmetic": True, "parsed": True}
    assert column_errors.column_errors("Sort these words", misread) is None

    run = tmp_path / "recipe.size=50,seed=0,teacher.effort=high" / "eval"
    run.mkdir(parents=True)
    rows = [{"model": "student", "prompt": prompt, "output": misread, "correct": False},
            {"model": "student", "prompt": prompt, "output": "The answer is 724.", "correct": True},
            {"model": "teacher", "prompt": prompt, "output": misread, "correct": False}]
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = column_errors.count(tmp_path)
    assert c["answers"] == 2 and c["wrong"] == 1 and c["wrong: a column adds digits not in the prompt"] == 1
    assert c["wrong: a column's sum, digit or carry is wrong"] == 0
