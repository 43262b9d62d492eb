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
