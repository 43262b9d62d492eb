"""Helpers for the eval tests: oracle rows on disk and a tiny student that has memorized one answer.

The memorizing student makes eval numbers non-trivial and known in advance: after a few dozen steps
on ``<think>\\nok\\n</think>\\n\\nThe answer is 1023.`` it says exactly that to every prompt, so it is
right exactly on the prompts whose reference is 1023 (the random-init base is right on none).
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from distill_lab.artifacts.rows import make_row, save_dataset
from distill_lab.students.config import StudentConfig
from distill_lab.tasks.base import Problem, get_family, make_prompt_id
from distill_lab.teachers.base import TeacherReply

MEMORIZED = "The answer is 1023."
TEACHER_FP = {"provider": "oracle", "model": "oracle-v1", "effort": "high", "temperature": 1.0,
              "top_p": None, "max_tokens": 16000, "budget_tokens": None}


def addition_problem(split: str, a: int, b: int) -> Problem:
    prompt = f"What is {a} + {b}?"
    return Problem(make_prompt_id("addition", split, prompt), "addition", "reasoning", split, prompt,
                   str(a + b), meta={"a": a, "b": b, "digits": len(str(a))})


def write_oracle_dataset(out: Path, *, wrong_teacher: int = 1) -> dict[str, list[Problem]]:
    """Addition rows (oracle, effort high): train 4, test 3 random + 2 summing to 1023, ood 3 random + 1
    summing to 1023. The teacher's answer to the first ``wrong_teacher`` ood prompts is made wrong."""
    fam = get_family("addition")
    rng = random.Random(7)
    probs = {
        "train": fam.generate("train", 4, rng),
        "test": fam.generate("test", 3, rng) + [addition_problem("test", 345, 678), addition_problem("test", 500, 523)],
        "ood": fam.generate("ood", 3, rng) + [addition_problem("ood", 1000, 23)],
    }
    rows = []
    for split, ps in probs.items():
        for i, p in enumerate(ps):
            reasoning, content = fam.oracle(p, "high")
            if split == "ood" and i < wrong_teacher:
                content = f"The answer is {int(p.reference) + 1}."
            rows.append(make_row(p, 0, TEACHER_FP, TeacherReply(content=content, reasoning=reasoning),
                                 verified=fam.verify(content, p.reference)))
    save_dataset(rows, out)
    return probs


DEFAULT_QUESTIONS = [f"What is {a} + {b}?" for a, b in [(345, 678), (12, 34), (999, 1), (52341, 12), (7, 7),
                                                           (100, 923), (5, 6), (31415, 92653)]]
DEFAULT_QUESTIONS += ["Hi", "Explain the carry step by step, please, for 4 + 9.", "?"]


def train_memorizer(student_cfg: StudentConfig, out_dir: Path, steps: int = 40, *,
                    questions: list[str] | None = None, content: str = MEMORIZED, thinking: str = "ok") -> Path:
    """Full fine-tuning of the tiny student until it answers ``thinking`` + ``content`` (default: MEMORIZED)
    to ``questions`` (default: any prompt); saves the checkpoint into ``out_dir`` (a ``full`` adapter dir
    that ``load_student`` reloads)."""
    from distill_lab.students import load_student

    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than two on a shared machine
    torch.manual_seed(0)
    try:
        model, tok = load_student(student_cfg)
        model.requires_grad_(True)
        answer = {"role": "assistant", "content": content, "reasoning_content": thinking}
        questions = DEFAULT_QUESTIONS if questions is None else questions
        texts = [tok.apply_chat_template([{"role": "user", "content": q}, answer], tokenize=False) for q in questions]
        tok.padding_side = "right"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].clone()  # [B, T]
        labels[enc["attention_mask"] == 0] = -100
        start = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        for i, row in enumerate(enc["input_ids"].tolist()):  # loss on the assistant turn only
            j = next(j for j in range(len(row)) if row[j:j + len(start)] == start)
            labels[i, :j + len(start)] = -100
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
        model.train()
        for _ in range(steps):
            model(**enc, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        model.save_pretrained(str(out_dir))
    finally:
        torch.set_num_threads(old_threads)
    return out_dir


def memorizer_dir(student_cfg: StudentConfig) -> Path:
    """The memorizing student, trained once per test session (cached beside the tiny student)."""
    import os

    out = Path(os.environ["DISTILL_LAB_CACHE"]) / "h4-memorizer-v1"
    if not (out / "config.json").is_file():
        train_memorizer(student_cfg, out)
    return out
