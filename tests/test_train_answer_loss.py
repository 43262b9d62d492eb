"""The loss on the final answer's tokens (after the thinking block), logged beside the full loss.

- ``answer_start`` marks the tokens of the last assistant turn's content (and its end-of-turn), not the
  thinking, in a row rendered by the tiny student's template;
- on a constructed batch, each backend's answer loss equals a hand computation over the answer positions
  only (plain model forward, full logits), in every batch layout, and the full loss is unchanged;
- a training run logs ``loss_answer`` per step and ``val_loss_answer``, and the summary reports both
  (checked in ``test_train_token_budget.py``, which trains anyway).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from distill_lab.backends.select import RunTraits, select_backend
from distill_lab.stages.train.datamodule import collate
from distill_lab.stages.train.features import answer_start
from distill_lab.stages.train.packing import IGNORE, Example
from distill_lab.students import load_student
from distill_lab.students.chat import tokenize_conversation
from distill_lab.students.tiny import build_tiny_tokenizer
from tests.conftest import compose_config


def _row(a: int, b: int, thinking: str) -> list[dict]:
    return [{"role": "user", "content": f"What is {a} + {b}?"},
            {"role": "assistant", "content": f"The answer is {a + b}.", "reasoning_content": thinking}]


def test_answer_start_marks_the_answer_not_the_thinking():
    tok = build_tiny_tokenizer()
    msgs = _row(345, 678, "5 + 8 = 13, write 3 carry 1. The answer is here too.")
    tc = tokenize_conversation(tok, msgs)
    k = answer_start(tc, msgs)
    assert k is not None
    answer_ids = [i for i, lab in zip(tc.input_ids[k:], tc.labels[k:], strict=True) if lab != IGNORE]
    text = tok.decode(answer_ids)
    assert text.strip().startswith("The answer is 1023.") and "carry" not in text
    before = tok.decode([i for i, lab in zip(tc.input_ids[:k], tc.labels[:k], strict=True) if lab != IGNORE])
    assert "carry 1" in before and "1023" not in before  # the thinking is outside the answer
    # no answer text: nothing marked
    assert answer_start(tc, [msgs[0], {**msgs[1], "content": ""}]) is None


def _hand_answer_loss(model, examples: list[Example]) -> tuple[float, int, float, int]:
    """Per row, a plain forward with full logits; CE summed over the supervised targets, and over the
    answer's targets only (target position t + 1 at or after answer_start)."""
    full = ans = 0.0
    n_full = n_ans = 0
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([e.input_ids])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            targets = torch.tensor(e.labels[1:])
            ce = F.cross_entropy(logits, targets.clamp(min=0), reduction="none")
            sup = targets != IGNORE
            is_ans = torch.tensor([t + 1 >= e.answer_start for t in range(len(e) - 1)]) & sup
            full += float(ce[sup].sum())
            ans += float(ce[is_ans].sum())
            n_full += int(sup.sum())
            n_ans += int(is_ans.sum())
    return full, n_full, ans, n_ans


@pytest.fixture(scope="module")
def tiny_student():
    torch.manual_seed(0)
    cfg = compose_config(["student=tiny"], stage="train").student
    return load_student(cfg, for_training=True)


@pytest.mark.parametrize("kernels", ["cpu_fast", "reference"])
def test_answer_loss_equals_the_hand_computation(kernels, tiny_student):
    model, tok = tiny_student
    backend = select_backend(kernels, RunTraits("cpu", "32-true", False, "auto"))
    backend.prepare(model)
    examples = []
    for i, (a, b, think) in enumerate([(12, 30, "2 + 0 = 2. 1 + 3 = 4."), (7, 5, "7 + 5 = 12."),
                                       (345, 678, "5 + 8 = 13, write 3, carry 1; 4 + 7 + 1 = 12.")]):
        msgs = _row(a, b, think)
        tc = tokenize_conversation(tok, msgs)
        examples.append(Example(f"r{i}", tc.input_ids, tc.labels, answer_start=answer_start(tc, msgs)))
    model.eval()  # no LoRA dropout: the hand computation and the backend see the same function
    want = _hand_answer_loss(model, examples)
    assert 0 < want[3] < want[1]  # the answer is a strict part of the supervised tokens
    for layout in ("padded", "padding_free", "packed"):
        with torch.no_grad():
            s, n, a_s, a_n = backend.loss_sums(model, collate(examples, layout, int(tok.pad_token_id), 512))
        assert n == want[1] and a_n == want[3], layout
        assert math.isclose(float(s), want[0], rel_tol=1e-4), (layout, float(s), want[0])
        assert math.isclose(a_s, want[2], rel_tol=1e-4), (layout, a_s, want[2])
    # a row without a marked answer adds to the full loss only
    bare = [Example("x", examples[0].input_ids, examples[0].labels)]
    with torch.no_grad():
        s, n, a_s, a_n = backend.loss_sums(model, collate(bare, "padded", int(tok.pad_token_id), 512))
    assert n > 0 and a_n == 0 and a_s == 0.0
