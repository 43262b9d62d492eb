"""experiments/effort_x_size/column_errors.py: every wrong answer lands in exactly one class, and an answer
built with one error of each kind is counted in that class (from a sweep folder and from packed evidence)."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import random
from pathlib import Path

import pytest

from distill_lab.tasks.base import get_family
from tests.eval_support import addition_problem

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("column_errors", ROOT / "experiments/effort_x_size/column_errors.py")
column_errors = importlib.util.module_from_spec(spec)
spec.loader.exec_module(column_errors)

FAM = get_family("addition", digits=3, ood_digits=4)


def _oracle(a: int, b: int) -> tuple[str, str]:
    p = addition_problem("test", a, b)
    thinking, answer = FAM.oracle(p, "high")
    return p.prompt, f"<think>\n{thinking}\n</think>\n\n{answer}"


def test_the_oracles_high_effort_traces_have_no_column_error():
    n = 0
    for split in ("test", "ood"):
        for p in itertools.islice(FAM.stream(split, random.Random(0)), 40):
            thinking, answer = FAM.oracle(p, "high")
            got = column_errors.classify(p.prompt, f"<think>\n{thinking}\n</think>\n\n{answer}")
            assert got == ("other", "no error found in the columns")
            n += 1
    assert n == 80


# one constructed wrong answer per class: (a, b, (old line, new line) or a whole output, truncated)
CASES = {
    "spurious carry": (423, 301, ("Column 2: 2 + 0 = 2. Write 2, carry 0.", "Column 2: 2 + 0 + 1 = 3. Write 3, carry 0.")),
    "omitted carry": (999, 1, ("Column 2: 9 + 0 + 1 = 10. Write 0, carry 1.", "Column 2: 9 + 0 = 9. Write 9, carry 0.")),
    "misread operand digit": (423, 301, ("Column 3: 4 + 3 = 7. Write 7, carry 0.", "Column 3: 4 + 0 = 4. Write 4, carry 0.")),
    "sum error": (423, 301, ("Column 1: 3 + 1 = 4. Write 4, carry 0.", "Column 1: 3 + 1 = 5. Write 5, carry 0.")),
    "other": (423, 301, ("Reading the digits from the left: 724.", "Reading the digits from the left: 742.")),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_constructed_error_of_each_kind_is_classified_as_that_kind(kind):
    a, b, (old, new) = CASES[kind]
    prompt, output = _oracle(a, b)
    assert old in output, "the oracle's trace changed: update the constructed error"
    got = column_errors.classify(prompt, output.replace(old, new))
    assert got is not None and got[0] == kind


def test_truncated_and_columnless_answers_and_non_sums():
    prompt, output = _oracle(423, 301)
    assert column_errors.classify(prompt, output[:60], truncated=True) == ("truncated", "cut by the token budget")
    assert column_errors.classify(prompt, "The answer is 725.") == ("other", "no column line")
    assert column_errors.classify("Sort these words", output) is None


def _wrong(kind: str) -> dict:
    a, b, (old, new) = CASES[kind]
    prompt, output = _oracle(a, b)
    return {"model": "student", "kind": "greedy", "prompt": prompt, "output": output.replace(old, new),
            "correct": False, "truncated": False}


def _rows() -> list[dict]:
    prompt, output = _oracle(423, 301)
    rows = [_wrong(k) for k in CASES] + [_wrong("misread operand digit")]
    rows.append({"model": "student", "kind": "greedy", "prompt": prompt, "output": output[:50], "correct": False,
                 "truncated": True})
    rows.append({"model": "student", "kind": "greedy", "prompt": prompt, "output": output, "correct": True})
    rows.append({"model": "teacher", "kind": "greedy", "prompt": prompt, "output": "x", "correct": False})
    return rows


def _expect(c):
    assert c["answers"] == 8 and c["wrong"] == 7
    assert sum(c[k] for k in column_errors.CLASSES) == c["wrong"]  # every wrong answer counted once
    assert {k: c[k] for k in column_errors.CLASSES} == {"truncated": 1, "spurious carry": 1, "omitted carry": 1,
                                                        "misread operand digit": 2, "sum error": 1, "other": 1}
    assert c["other: digits read off wrongly"] == 1


def test_count_over_a_sweep_folder_reads_only_the_effort_asked(tmp_path):
    for effort, rows in (("high", _rows()), ("low", [_wrong("sum error")] * 3)):
        run = tmp_path / f"recipe.size=50,seed=0,teacher.effort={effort}" / "eval"
        run.mkdir(parents=True)
        (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _expect(column_errors.count(tmp_path))
    assert column_errors.count(tmp_path, effort="low")["sum error"] == 3
    table = column_errors.table(column_errors.count(tmp_path))
    assert "| misread operand digit | 2 | 28.6 % |" in table and "| other | 1 | 14.3 % |" in table


def test_count_over_packed_evidence(tmp_path):
    f = tmp_path / "samples.jsonl.gz"
    with gzip.open(f, "wt") as out:
        for run, effort, rows in (("r_high", "high", _rows()), ("r_low", "low", [_wrong("sum error")])):
            out.write(json.dumps({"type": "run", "run": run, "effort": effort}) + "\n")
            for r in rows:
                out.write(json.dumps({"type": "sample", "run": run, "record": r}) + "\n")
    _expect(column_errors.count(f))
