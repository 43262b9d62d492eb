"""Chat templates (jinja) that render an assistant turn's ``reasoning_content`` as ``<think>``.

``CHATML_THINK`` is the template of the tiny student and of SmolLM2 (whose own ChatML template has no
place for reasoning). An assistant turn renders as::

    <|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n{content}<|im_end|>\n

Which turns keep their reasoning is decided before rendering (``distill_lab.students.chat``), so the
template renders whatever reasoning a message carries. Keyword ``enable_thinking=False`` renders an
empty think block instead (Qwen3's convention), in training rows and in the generation prompt alike.
``default_system`` (a template variable) is used when the conversation has no system message.
"""

from __future__ import annotations

CHATML_THINK = (
    "{%- set think = enable_thinking if enable_thinking is defined else true -%}"
    "{%- if default_system is defined and default_system and messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{{- '<|im_start|>' + m['role'] + '\\n' -}}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- if think and m.get('reasoning_content') -%}"
    "{{- '<think>\\n' + m['reasoning_content'] + '\\n</think>\\n\\n' -}}"
    "{%- elif not think -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{{- (m['content'] or '') + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if not think -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)

# SmolLM2-Instruct's own template adds this system prompt when a conversation has none; keep it.
SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def with_default_system(template: str, system: str) -> str:
    """``template`` with ``default_system`` bound to ``system`` (a jinja ``set`` prepended)."""
    escaped = system.replace("\\", "\\\\").replace("'", "\\'")
    return "{%- set default_system = '" + escaped + "' -%}" + template

# Gemma's turn format, for Gemma-3 base models (no chat template of their own): the vocabulary's own
# <start_of_turn> / <end_of_turn> tokens, the assistant's role named "model", a system message folded
# into the first user turn (Gemma has no system role), BOS first (tokenization adds no special tokens),
# the reasoning as <think> like CHATML_THINK. The tokenizer's eos becomes <end_of_turn> (students/gguf.py)
# so training supervises it and generation stops on it.
GEMMA_THINK = (
    "{%- set think = enable_thinking if enable_thinking is defined else true -%}"
    "{{- bos_token -}}"
    "{%- set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' -%}"
    "{%- for m in messages if m['role'] != 'system' -%}"
    "{{- '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n' -}}"
    "{%- if m['role'] == 'user' and system and loop.first -%}{{- system + '\\n\\n' -}}{%- endif -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- if think and m.get('reasoning_content') -%}"
    "{{- '<think>\\n' + m['reasoning_content'] + '\\n</think>\\n\\n' -}}"
    "{%- elif not think -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{{- (m['content'] or '') + '<end_of_turn>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<start_of_turn>model\\n' -}}"
    "{%- if not think -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)
