"""Batched generation: left padding gives the same greedy outputs as one prompt at a time; stops at
end of turn; runaways are flagged; sampling is seeded."""

from __future__ import annotations

import pytest
import torch

from distill_lab.stages.evaluate.decode import generate, stop_token_ids
from distill_lab.students import load_student
from distill_lab.students.chat import render_prompt
from distill_lab.students.config import StudentConfig
from tests.eval_support import MEMORIZED, memorizer_dir

QUESTIONS = ["What is 1 + 2?", "What is 12345 + 67890?", "Hi", "What is 500 + 523? Think step by step please."]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread beats two on a shared 2-core machine (and avoids oversubscription)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def memorizer():
    cfg = StudentConfig()
    model, tok = load_student(cfg, adapter_dir=memorizer_dir(cfg))
    return model, tok


def _prompts(tok):
    return [render_prompt(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]


def test_stops_at_end_of_turn_and_strips_the_stop_token(memorizer):
    model, tok = memorizer
    out = generate(model, tok, _prompts(tok), max_new_tokens=60, batch_size=4)
    for (g,) in out:
        assert g.text == f"<think>\nok\n</think>\n\n{MEMORIZED}"
        assert g.stopped and not g.runaway
        assert g.n_tokens == len(tok(g.text, add_special_tokens=False)["input_ids"])
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tok, model)


def test_batched_left_padding_equals_one_at_a_time(memorizer):
    model, tok = memorizer
    prompts = _prompts(tok)
    batched = generate(model, tok, prompts, max_new_tokens=40, batch_size=4)
    single = generate(model, tok, prompts, max_new_tokens=40, batch_size=1)
    assert [g[0].text for g in batched] == [g[0].text for g in single]
    base, _ = load_student(StudentConfig())  # the random base: long, prompt-dependent outputs
    batched = generate(base, tok, prompts, max_new_tokens=12, batch_size=4)
    single = generate(base, tok, prompts, max_new_tokens=12, batch_size=1)
    assert [g[0].text for g in batched] == [g[0].text for g in single]
    assert tok.padding_side == "right"  # restored after generation


def test_runaway_is_flagged_at_max_new_tokens():
    model, tok = load_student(StudentConfig())
    torch.manual_seed(0)
    out = generate(model, tok, _prompts(tok)[:2], max_new_tokens=7, batch_size=2)
    for (g,) in out:
        assert g.n_tokens == 7 and g.runaway and not g.stopped


def test_sampling_is_seeded_and_returns_n_per_prompt():
    model, tok = load_student(StudentConfig())
    prompts = _prompts(tok)[:2]
    kw = dict(max_new_tokens=10, batch_size=2, num_return_sequences=3, do_sample=True, temperature=1.5, top_p=1.0)
    a = generate(model, tok, prompts, seed=1, **kw)
    b = generate(model, tok, prompts, seed=1, **kw)
    c = generate(model, tok, prompts, seed=2, **kw)
    assert [len(x) for x in a] == [3, 3]
    assert [[g.text for g in x] for x in a] == [[g.text for g in x] for x in b]
    assert [[g.text for g in x] for x in a] != [[g.text for g in x] for x in c]
    assert len({g.text for g in a[0]}) > 1  # temperature 1.5 on a random model: the samples differ
    with pytest.raises(ValueError, match="num_return_sequences must be 1"):
        generate(model, tok, prompts, max_new_tokens=2, num_return_sequences=2)


def test_bf16_autocast_path_runs_and_keeps_shapes():
    model, tok = load_student(StudentConfig())
    out = generate(model, tok, _prompts(tok)[:3], max_new_tokens=5, batch_size=3, bf16=True)
    assert [len(x) for x in out] == [1, 1, 1]
    assert all(g[0].n_tokens <= 5 for g in out)
