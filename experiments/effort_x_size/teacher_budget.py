"""What a generation budget does to the teacher's own answers in the effort study, offline.

    python experiments/effort_x_size/teacher_budget.py [--budget 176] [--out FILE.md] [--student smollm2_135m]

The oracle teacher is deterministic and the study's held-out prompts depend on ``recipe.seed`` only, so
its answers to the 40 test and 40 OOD prompts of every run of ``experiment=effort_x_size`` are
regenerated here (the generate stage, oracle, once per effort) and measured exactly as the eval stage
measures them (``students/budget.py``: the student's chat template and tokenizer, thinking and end of
turn included). For each effort and split: the longest answer, the mean, what ``auto`` would choose,
and under ``--budget``: how many of the teacher's answers it cuts, and how many of those the old
parser (before truncated outputs were set apart) read as a wrong number — a perfect student's
accuracy under that budget is the share not cut.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from pathlib import Path
from statistics import mean

from distill_lab.app import compose_config
from distill_lab.artifacts.rows import load_rows
from distill_lab.stages.common import run_stage
from distill_lab.stages.evaluate.extract import score_output
from distill_lab.students.budget import answer_tokens, answers_from_rows
from distill_lab.students.chat import render_prompt, render_with_spans
from distill_lab.students.loader import load_tokenizer

EFFORTS = ("low", "medium", "high")
SPLITS = ("test", "ood")


def cut_answer(tokenizer, messages, budget: int) -> str:
    """The first ``budget`` tokens of the teacher's answer as the student would generate them, as text."""
    rc = render_with_spans(tokenizer, messages)
    start, end = rc.assistant_spans[-1]
    head = render_prompt(tokenizer, messages)
    ids = tokenizer(rc.text[start:end], add_special_tokens=False)["input_ids"][:budget]
    text = tokenizer.decode(ids, skip_special_tokens=False)
    return ("<think>" + text) if head.rstrip().endswith("<think>") else text


def measure(budget: int, student: str, extra: list[str]) -> list[dict]:
    out = []
    tok = None
    for effort in EFFORTS:
        cfg = compose_config(["experiment=effort_x_size", f"student={student}", f"teacher.effort={effort}", *extra],
                             stage="generate")
        tok = tok or load_tokenizer(cfg.student)
        with tempfile.TemporaryDirectory() as d:
            run_stage("generate", cfg, Path(d))
            rows = load_rows(Path(d) / "dataset")
        by_pid = {r["prompt_id"]: r for r in rows}
        answers = answers_from_rows(rows, list(SPLITS))
        for split in SPLITS:
            here = [a for a in answers if a.split == split]
            lens = [answer_tokens(tok, a.messages) for a in here]
            cut = [a for a, n in zip(here, lens, strict=True) if n > budget]
            misread = still_right = 0
            for a in cut:
                s = score_output(cut_answer(tok, a.messages, budget), "addition", by_pid[a.prompt_id]["reference"])
                misread += s.extracted is not None and not s.correct
                still_right += s.correct  # only the end-of-turn token was cut: the old reading scored it right
            out.append({"effort": effort, "split": split, "answers": len(here), "longest": max(lens),
                        "mean": mean(lens), "auto": math.ceil(max(lens) * cfg.eval.budget_margin),
                        "cut": len(cut), "cut_read_as_wrong_number": misread, "cut_still_right_old": still_right,
                        "perfect_student_accuracy": 1 - len(cut) / len(here),
                        "perfect_student_accuracy_old": 1 - (len(cut) - still_right) / len(here)})
    return out


def markdown(rows: list[dict], budget: int, student: str) -> str:
    lines = [f"Teacher's answers (oracle) to the effort study's held-out prompts, in {student}'s tokens "
             f"(thinking and end of turn included), against max_new_tokens = {budget}:", "",
             f"| effort | split | answers | longest | mean | auto (x1.25) | cut at {budget} (no end of turn) | cut, read "
             f"as a wrong number by the old parser | cut, still right by the old parser (only the end of turn lost) "
             f"| a perfect student's accuracy at {budget}: old parser / truncated = wrong |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['effort']} | {r['split']} | {r['answers']} | {r['longest']} | {r['mean']:.1f} | {r['auto']} "
                     f"| {r['cut']} ({100 * r['cut'] / r['answers']:.0f} %) | {r['cut_read_as_wrong_number']} "
                     f"| {r['cut_still_right_old']} | {100 * r['perfect_student_accuracy_old']:.1f} % / "
                     f"{100 * r['perfect_student_accuracy']:.1f} % |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=176)
    ap.add_argument("--student", default="smollm2_135m")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("overrides", nargs="*", help="extra config overrides (e.g. recipe.ood_size=100)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    md = markdown(measure(args.budget, args.student, args.overrides), args.budget, args.student)
    print(md)
    if args.out:
        args.out.write_text(md)


if __name__ == "__main__":
    main()
