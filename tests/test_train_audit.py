"""The label audit and the overlong policy: every failure is caught with a message naming the row."""

from __future__ import annotations

import pytest

from distill_lab.stages.train.config import DataConfig
from distill_lab.stages.train.features import AuditError, audit_row, build_examples, end_of_turn_id
from distill_lab.students.chat import IGNORE, tokenize_conversation
from distill_lab.students.tiny import build_tiny_tokenizer

MSGS = [{"role": "user", "content": "What is 12 + 30?", "reasoning_content": None},
        {"role": "assistant", "content": "The answer is 42.", "reasoning_content": "2 + 0 = 2; 1 + 3 = 4."}]


def row(i: int, answer: str = "The answer is 42.", reasoning: str = "2 + 0 = 2; 1 + 3 = 4.") -> dict:
    return {"id": f"r{i}", "split": "train", "messages": [MSGS[0], {"role": "assistant", "content": answer,
                                                                     "reasoning_content": reasoning}]}


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def test_clean_rows_pass_and_are_counted(tok):
    exs, stats = build_examples([row(0), row(1)], tok, DataConfig())
    assert [e.row_id for e in exs] == ["r0", "r1"] and stats.kept == 2
    tc = tokenize_conversation(tok, MSGS)
    assert stats.supervised_tokens == 2 * tc.num_supervised
    assert stats.masked_tokens == 2 * (len(tc.input_ids) - tc.num_supervised)
    assert tok.decode([i for i, lab in zip(exs[0].input_ids, exs[0].labels, strict=True) if lab != IGNORE]) == (
        "<think>\n2 + 0 = 2; 1 + 3 = 4.\n</think>\n\nThe answer is 42.<|im_end|>")


def test_fully_masked_row_is_named(tok):
    tc = tokenize_conversation(tok, MSGS)
    tc.labels = [IGNORE] * len(tc.labels)
    with pytest.raises(AuditError, match=r"row 5 \(id=x\): every label is masked"):
        audit_row(tc, MSGS, end_of_turn_id(tok), "row 5 (id=x)")


def test_label_differing_from_input_is_named(tok):
    tc = tokenize_conversation(tok, MSGS)
    t = next(i for i, lab in enumerate(tc.labels) if lab != IGNORE)
    tc.labels[t] = tc.input_ids[t] + 1
    with pytest.raises(AuditError, match=r"row 6 .*label differs from input id"):
        audit_row(tc, MSGS, end_of_turn_id(tok), "row 6 (id=y)")


def test_supervised_user_text_is_named(tok):
    tc = tokenize_conversation(tok, MSGS)
    start = tc.rendered.text.index("12 + 30")
    t = next(i for i, (s, _e) in enumerate(tc.offsets) if s == start)
    tc.labels[t] = tc.input_ids[t]
    with pytest.raises(AuditError, match=r"row 7 .*user text of message 0 is supervised"):
        audit_row(tc, MSGS, end_of_turn_id(tok), "row 7 (id=z)")


def test_unsupervised_end_of_turn_is_named(tok):
    tc = tokenize_conversation(tok, MSGS)
    eot = end_of_turn_id(tok)
    last = max(i for i, lab in enumerate(tc.labels) if lab != IGNORE)
    assert tc.input_ids[last] == eot
    tc.labels[last] = IGNORE
    with pytest.raises(AuditError, match=r"row 8 .*end-of-turn"):
        audit_row(tc, MSGS, eot, "row 8 (id=w)")


def test_overlong_rows_drop_truncate_or_error(tok):
    long_reasoning = "carry " * 40  # about 240 byte tokens
    rows = [row(0), row(1, reasoning=long_reasoning), row(2)]
    n_short = len(tokenize_conversation(tok, rows[0]["messages"]).input_ids)
    n_long = len(tokenize_conversation(tok, rows[1]["messages"]).input_ids)
    max_length = n_short + 20
    assert n_long > max_length

    exs, st = build_examples(rows, tok, DataConfig(max_length=max_length, overlong="drop"))
    assert [e.row_id for e in exs] == ["r0", "r2"] and st.dropped_overlong == 1 and st.truncated == 0

    exs, st = build_examples(rows, tok, DataConfig(max_length=max_length, overlong="truncate"))
    assert [len(e) for e in exs] == [n_short, max_length, n_short] and st.truncated == 1
    assert any(lab != IGNORE for lab in exs[1].labels)

    with pytest.raises(AuditError, match=r"row 1 \(id=r1\): \d+ tokens > data.max_length"):
        build_examples(rows, tok, DataConfig(max_length=max_length, overlong="error"))

    # truncated before the answer starts: nothing left to learn -> dropped, counted, and with no row
    # left the run stops with a clear error
    labels = tokenize_conversation(tok, MSGS).labels
    prompt_len = next(i for i, lab in enumerate(labels) if lab != IGNORE)
    exs, st = build_examples([row(0), row(1, reasoning=long_reasoning)], tok,
                             DataConfig(max_length=n_short, overlong="truncate"))
    assert [e.row_id for e in exs] == ["r0", "r1"] and st.truncated == 1 and st.dropped_truncated_empty == 0
    with pytest.raises(AuditError, match="no trainable rows"):
        build_examples([row(0)], tok, DataConfig(max_length=prompt_len, overlong="truncate"))


def test_a_row_without_assistant_turn_is_named(tok):
    bad = {"id": "nope", "messages": [MSGS[0]]}
    with pytest.raises(AuditError, match=r"row 1 \(id=nope\).*no assistant"):
        build_examples([row(0), bad], tok, DataConfig())
