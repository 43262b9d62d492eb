"""Where wrong high-effort addition answers go wrong: every wrong answer in exactly one class.

    python experiments/effort_x_size/column_errors.py EVIDENCE [--model student] [--effort high]

EVIDENCE is a sweep folder (``multirun/effort_x_size/<name>``: every ``*/eval/samples.jsonl`` whose run
has ``teacher.effort=<effort>``), a study's packed evidence (``samples.jsonl.gz``, written by
``distill-lab report report.pack_evidence=...``), or one ``samples.jsonl``. Only greedy outputs of
``--model`` on addition prompts are read.

Each wrong answer's column lines (the oracle's high-effort trace: ``Column 2: 7 + 9 + 1 = 17. Write 7,
carry 1.``; a column adds the carry as a third term only when one came in) are walked from the ones
column up, against the prompt's digits and the carry the answer itself wrote one column before; the
first error decides the class:

- ``truncated``: the budget ended the output before end of turn (never parsed; checked first);
- ``spurious carry``: a column adds a carry of 1 that did not come in (its operand digits right);
- ``omitted carry``: a carry of 1 came in and the column leaves it out (its operand digits right);
- ``misread operand digit``: a column adds digits that are not the prompt's digits of that column;
- ``sum error``: the column's terms are right, its sum, written digit or carry out is wrong;
- ``other``: no column error found (no column line, columns missing, the digits read off wrongly, or
  the final answer differs from the columns); its reason is counted apart.

The classes add up to the wrong answers. The oracle's own traces have no error (the parser's check);
``tests/test_column_errors.py`` builds an answer of each class and checks it is counted there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROMPT = re.compile(r"What is (\d+) \+ (\d+)\?")
COLUMN = re.compile(r"Column (\d+): ([\d +]+?) = (\d+)\. Write (\d+), carry (\d+)")
READ_OFF = re.compile(r"Reading the digits from the left: (\d+)")
ANSWER = re.compile(r"answer is\s*(-?\d+)")
CLASSES = ("truncated", "spurious carry", "omitted carry", "misread operand digit", "sum error", "other")


def classify(prompt: str, output: str, *, truncated: bool = False) -> tuple[str, str] | None:
    """``(class, detail)`` of one wrong answer (``CLASSES``); None when the prompt is not a sum."""
    m = PROMPT.match(prompt)
    if not m:
        return None
    if truncated:
        return "truncated", "cut by the token budget"
    a, b = m.group(1)[::-1], m.group(2)[::-1]  # ones first
    cols = COLUMN.findall(output)
    if not cols:
        return "other", "no column line"
    carry_in = 0
    for k, terms, total, written, carry_out in cols:
        i = int(k) - 1
        digits = sorted(int(x[i]) if i < len(x) else 0 for x in (a, b))
        t = [int(x) for x in terms.split("+")]
        if len(t) == 3 and carry_in == 0 and sorted(t[:2]) == digits and t[2] == 1:
            return "spurious carry", f"column {k}"
        if len(t) == 2 and carry_in == 1 and sorted(t) == digits:
            return "omitted carry", f"column {k}"
        expected = digits + ([carry_in] if carry_in else [])
        if sorted(t) != sorted(expected):
            return "misread operand digit", f"column {k}"
        s = sum(t)
        if int(total) != s or int(written) != s % 10 or int(carry_out) != s // 10:
            return "sum error", f"column {k}"
        carry_in = int(carry_out)
    n_cols = max(len(a), len(b))
    if len(cols) < n_cols:
        return "other", "columns missing"
    digits_written = "".join(w for *_, w, _c in reversed(cols))
    value = str(int((str(carry_in) if carry_in else "") + digits_written))
    read = READ_OFF.findall(output)
    if read and read[-1] != value:
        return "other", "digits read off wrongly"
    ans = ANSWER.findall(output.rsplit("</think>", 1)[-1])
    if ans and ans[-1] != value:
        return "other", "the answer differs from the columns"
    return "other", "no error found in the columns"


def _effort_of(run: str, meta: dict[str, Any] | None = None) -> str | None:
    if meta and meta.get("effort"):
        return str(meta["effort"])
    m = re.search(r"teacher\.effort=(\w+)", run)
    return m.group(1) if m else None


def records(source: Path) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """``(run, effort, record)`` for every sample line of a sweep folder, a packed evidence file or one
    samples.jsonl."""
    source = Path(source)
    if source.is_dir():
        for f in sorted(source.glob("*/eval/samples.jsonl")):
            run = f.parent.parent.name
            for line in f.open():
                if line.strip():
                    yield run, _effort_of(run), json.loads(line)
        return
    opener = gzip.open if source.suffix == ".gz" else open
    runs: dict[str, dict[str, Any]] = {}
    with opener(source, "rt") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            if d.get("type") == "run":  # packed evidence (stages/report/samples.py)
                runs[d["run"]] = d
            elif d.get("type") == "sample":
                yield d["run"], _effort_of(d["run"], runs.get(d["run"])), d["record"]
            elif "type" not in d:  # a plain samples.jsonl
                yield source.parent.name, None, d


def count(source: Path, model: str = "student", effort: str | None = "high") -> Counter:
    """Counts: ``answers``, ``wrong``, one key per class, and ``other: <reason>``."""
    out: Counter = Counter({c: 0 for c in CLASSES})
    for _run, eff, s in records(source):
        if s.get("model") != model or s.get("kind", "greedy") != "greedy":
            continue
        if effort is not None and eff is not None and eff != effort:
            continue
        truncated = bool(s.get("truncated", s.get("runaway", False)))
        if (c := classify(s["prompt"], s["output"], truncated=truncated)) is None:
            continue
        out["answers"] += 1
        if s["correct"]:
            continue
        out["wrong"] += 1
        out[c[0]] += 1
        if c[0] == "other":
            out[f"other: {c[1]}"] += 1
    return out


def table(c: Counter) -> str:
    wrong = c["wrong"] or 1
    lines = [f"{c['wrong']} wrong of {c['answers']} answers", "", "| class | wrong answers | share |", "|---|---|---|"]
    lines += [f"| {k} | {c[k]} | {100 * c[k] / wrong:.1f} % |" for k in CLASSES]
    lines += [f"| ({k}) | {v} | {100 * v / wrong:.1f} % |" for k, v in sorted(c.items()) if k.startswith("other: ")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evidence", type=Path)
    ap.add_argument("--model", default="student")
    ap.add_argument("--effort", default="high", help="runs of this teacher.effort only ('any': all runs)")
    args = ap.parse_args()
    print(table(count(args.evidence, args.model, None if args.effort == "any" else args.effort)))


if __name__ == "__main__":
    main()
