"""Chat rendering and assistant-only label masks.

A row's ``messages`` are rendered with the student tokenizer's own chat template. Which assistant turns
keep their reasoning is decided here, before rendering (``keep_past_reasoning``: reasoning of turns
before the last user message is dropped unless kept), so the template only has to render what a
message carries.

Masks come from character spans, not from searching the text for template strings: for assistant
turn ``i`` the span starts where ``render(messages[:i], add_generation_prompt=True)`` ends and stops
where ``render(messages[:i + 1])`` ends (trailing whitespace after the end-of-turn token excluded).
Both renders must be prefixes of the full render; a template for which they are not is reported with
the row and turn. Token offsets (``return_offsets_mapping``) then map the spans onto tokens: a token is
supervised when it starts inside a span. The span covers the reasoning, the answer and the end-of-turn
token, so the student learns to stop (also when pad == eos: labels never look at the pad id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IGNORE = -100


class RenderError(ValueError):
    """A conversation cannot be rendered into spans with this template; the message names the row."""


def prepare_messages(messages: list[dict[str, Any]], *, keep_past_reasoning: bool = False) -> list[dict[str, Any]]:
    """Copy of ``messages`` with the reasoning policy applied (and ``reasoning_content`` always present)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    out = []
    for i, m in enumerate(messages):
        m = dict(m)
        m["content"] = m.get("content") or ""
        reasoning = m.get("reasoning_content")
        if m.get("role") != "assistant" or (i < last_user and not keep_past_reasoning):
            reasoning = None
        m["reasoning_content"] = reasoning or None
        out.append(m)
    return out


def render(tokenizer, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False,
           enable_thinking: bool = True) -> str:
    """The template's text for ``messages`` (no tokenization)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         enable_thinking=enable_thinking)
    assert isinstance(text, str), f"apply_chat_template returned {type(text).__name__}, expected str"
    return text


def render_prompt(tokenizer, messages: list[dict[str, Any]], *, enable_thinking: bool = True) -> str:
    """What the student sees before generating: the conversation up to its last non-assistant message,
    then the generation prompt (``<|im_start|>assistant\\n`` for ChatML)."""
    msgs = list(messages)
    while msgs and msgs[-1].get("role") == "assistant":
        msgs.pop()
    if not msgs:
        raise RenderError("render_prompt: no user message to answer")
    return render(tokenizer, prepare_messages(msgs), add_generation_prompt=True, enable_thinking=enable_thinking)


@dataclass
class RenderedConversation:
    text: str
    assistant_spans: list[tuple[int, int]]  # [start, end) in text, one per assistant turn
    message_spans: list[tuple[int, int]] = field(default_factory=list)  # every message's whole render


def render_with_spans(tokenizer, messages: list[dict[str, Any]], *, enable_thinking: bool = True,
                      keep_past_reasoning: bool = False, where: str = "row") -> RenderedConversation:
    """Render ``messages`` and locate each assistant turn (reasoning + answer + end-of-turn token)."""
    msgs = prepare_messages(messages, keep_past_reasoning=keep_past_reasoning)
    if not any(m["role"] == "assistant" for m in msgs):
        raise RenderError(f"{where}: no assistant message to learn from")
    full = render(tokenizer, msgs, enable_thinking=enable_thinking)
    spans: list[tuple[int, int]] = []
    message_spans: list[tuple[int, int]] = []
    prev_end = 0
    for i, m in enumerate(msgs):
        upto = render(tokenizer, msgs[: i + 1], enable_thinking=enable_thinking)
        if not full.startswith(upto):
            raise RenderError(f"{where}: the chat template does not render messages[:{i + 1}] as a prefix of the "
                              f"whole conversation; assistant spans cannot be located")
        if m["role"] == "assistant":
            head = render(tokenizer, msgs[:i], add_generation_prompt=True, enable_thinking=enable_thinking)
            if not upto.startswith(head):
                raise RenderError(f"{where}: turn {i}: the generation prompt is not a prefix of the rendered turn")
            end = len(upto.rstrip())
            if end <= len(head):
                raise RenderError(f"{where}: turn {i}: the assistant turn renders empty")
            spans.append((len(head), end))
        message_spans.append((prev_end, len(upto)))
        prev_end = len(upto)
    return RenderedConversation(text=full, assistant_spans=spans, message_spans=message_spans)


@dataclass
class TokenizedConversation:
    input_ids: list[int]
    labels: list[int]  # IGNORE where not supervised
    offsets: list[tuple[int, int]]
    rendered: RenderedConversation

    @property
    def num_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def tokenize_conversation(tokenizer, messages: list[dict[str, Any]], *, enable_thinking: bool = True,
                          keep_past_reasoning: bool = False, where: str = "row") -> TokenizedConversation:
    """Token ids of the rendered conversation and labels supervised on the assistant spans only."""
    rc = render_with_spans(tokenizer, messages, enable_thinking=enable_thinking,
                           keep_past_reasoning=keep_past_reasoning, where=where)
    enc = tokenizer(rc.text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    labels = [IGNORE] * len(ids)
    k = 0
    spans = rc.assistant_spans
    for t, (s, _e) in enumerate(offsets):
        while k < len(spans) and s >= spans[k][1]:
            k += 1
        if k < len(spans) and spans[k][0] <= s < spans[k][1]:
            labels[t] = ids[t]
    return TokenizedConversation(input_ids=ids, labels=labels, offsets=offsets, rendered=rc)  # type: ignore[arg-type]
