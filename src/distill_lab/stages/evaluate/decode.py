"""Batched generation for evaluation: left padding, KV cache, stop at end of turn, n samples, seed.

Prompts are sorted by length so each batch pads little; results come back in the input order.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")


@dataclass(frozen=True)
class Generation:
    text: str  # decoded output up to (not including) the stop token
    n_tokens: int  # generated tokens before the stop token
    stopped: bool  # a stop token was generated
    runaway: bool  # no stop token within max_new_tokens


def stop_token_ids(tokenizer: Any, model: Any | None = None) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, known end-of-turn tokens in its vocab, the model's eos."""
    ids: list[int] = []

    def add(x: Any) -> None:
        for i in x if isinstance(x, list | tuple) else [x]:
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids.append(i)

    add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab:
            add(vocab[tok])
    gen_cfg = getattr(model, "generation_config", None)
    if gen_cfg is not None:
        add(gen_cfg.eos_token_id)
    if not ids:
        raise ValueError("tokenizer has no eos token and no known end-of-turn token: cannot stop generation")
    return ids


def _autocast(model: Any, bf16: bool):
    device = next(model.parameters()).device
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    bf16: bool = False,
    progress: bool = False,
    desc: str = "generate",
    stopping: Any = None,
) -> list[list[Generation]]:
    """For each prompt text (already chat-rendered), ``num_return_sequences`` generations.

    ``stopping``: a function of a batch's padded prompt length returning extra ``stopping_criteria``
    (eval's stop sequences that fire only after the thinking; ``evaluation/backends.py``)."""
    from transformers import GenerationConfig

    if not do_sample and num_return_sequences != 1:
        raise ValueError("greedy decoding gives one sequence per prompt; num_return_sequences must be 1")
    stops = stop_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    gen_kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      num_return_sequences=num_return_sequences, eos_token_id=stops,
                                      pad_token_id=pad_id, use_cache=True)
    if do_sample:
        gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    gen_cfg = GenerationConfig(**gen_kwargs)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    results: list[list[Generation] | None] = [None] * len(prompts)
    try:
        from distill_lab.console import progress as progress_bar

        # a bar on a terminal; log lines at a steady cadence elsewhere (stages/evaluate logs "eval: ...")
        bar = progress_bar(logging.getLogger("distill_lab.stages.evaluate"), f"eval: {desc}", len(prompts),
                           "prompts", enabled=progress)
        for b, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            if do_sample:
                torch.manual_seed(seed + b)
            with _autocast(model, bf16):
                extra = {"stopping_criteria": stopping(enc["input_ids"].shape[1])} if stopping else {}
                out = model.generate(**enc, generation_config=gen_cfg, **extra)  # [B * n, T_in + T_new]
            new = out[:, enc["input_ids"].shape[1]:].tolist()  # [B * n, T_new]
            for j, i in enumerate(idx):
                results[i] = [_decode(tokenizer, new[j * num_return_sequences + s], stops, max_new_tokens)
                              for s in range(num_return_sequences)]
            bar.update(len(idx))
        bar.close()
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    assert all(r is not None for r in results), "a prompt got no generation"
    return results  # type: ignore[return-value]


def _decode(tokenizer: Any, ids: list[int], stops: list[int], max_new_tokens: int) -> Generation:
    stop_at = next((k for k, t in enumerate(ids) if t in stops), None)
    body = ids if stop_at is None else ids[:stop_at]
    text = tokenizer.decode(body, skip_special_tokens=False)
    return Generation(text=text, n_tokens=len(body), stopped=stop_at is not None,
                      runaway=stop_at is None and len(ids) >= max_new_tokens)


def render(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The generation prompt (chat template, thinking on), rendered as the train stage renders rows
    (``students/chat.render_prompt``; one renderer, no second path through the raw template)."""
    from distill_lab.students.chat import render_prompt

    return render_prompt(tokenizer, messages, enable_thinking=True)
