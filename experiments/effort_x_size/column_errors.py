"""Where high-effort addition traces go wrong: a column's digits, or its sum and carry.

    python experiments/effort_x_size/column_errors.py multirun/effort_x_size/smollm2 [--model student]

Reads every ``*teacher.effort=high*/eval/samples.jsonl`` of the sweep and parses each answer's column
lines (``Column 2: 7 + 9 + 1 = 17. Write 7, carry 1.``, the oracle's high-effort trace). For each wrong
answer it counts whether some column adds digits that are not the prompt's digits of that column
(a copying error: the operands misread), and whether some column's sum, written digit or carry is wrong
(an arithmetic error). The oracle's own traces have neither (the check of this parser).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

PROMPT = re.compile(r"What is (\d+) \+ (\d+)\?")
COLUMN = re.compile(r"Column (\d+): ([\d +]+?) = (\d+)\. Write (\d+), carry (\d+)")


def column_errors(prompt: str, output: str) -> dict[str, bool] | None:
    """``{"copy": .., "arithmetic": .., "parsed": ..}`` for one answer, None when the prompt is not a sum."""
    m = PROMPT.match(prompt)
    if not m:
        return None
    a, b = m.group(1)[::-1], m.group(2)[::-1]  # ones first
    copy = arithmetic = False
    carry = 0
    cols = COLUMN.findall(output)
    for k, terms, total, written, carry_out in cols:
        i = int(k) - 1
        digits = sorted(int(x[i]) if i < len(x) else 0 for x in (a, b))
        t = sorted(int(x) for x in terms.split("+"))
        if t not in (digits, sorted([*digits, carry])):
            copy = True
        s = sum(t)
        if s != int(total) or int(written) != s % 10 or int(carry_out) != s // 10:
            arithmetic = True
        carry = int(carry_out)
    return {"copy": copy, "arithmetic": arithmetic, "parsed": bool(cols)}


def count(sweep_dir: Path, model: str = "student") -> Counter:
    out: Counter = Counter()
    for f in sorted(Path(sweep_dir).glob("*teacher.effort=high*/eval/samples.jsonl")):
        for line in f.open():
            s = json.loads(line)
            if s["model"] != model or (e := column_errors(s["prompt"], s["output"])) is None:
                continue
            out["answers"] += 1
            if s["correct"]:
                continue
            out["wrong"] += 1
            out["wrong: a column adds digits not in the prompt"] += e["copy"]
            out["wrong: a column's sum, digit or carry is wrong"] += e["arithmetic"]
            out["wrong: both"] += e["copy"] and e["arithmetic"]
            out["wrong: no column line"] += not e["parsed"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("--model", default="student")
    args = ap.parse_args()
    for k, v in count(Path(args.sweep_dir), args.model).items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
