"""The ``tiny`` student: a random-init Qwen3 built from ``student.tiny`` and a locally built tokenizer.

Both are created once, deterministically (seed 0), and cached under
``<student.cache_dir>/tiny-<hash of arch and tokenizer version>/``; every process (train, eval, each
FSDP rank) then loads the same weights from disk. Creation writes into a temporary folder that is
renamed into place, so concurrent processes never see a half-written cache.

Tokenizer: byte-level BPE without merges (one token per byte: covers any text, deterministic, no
training data) plus the special tokens ``<|endoftext|>`` (pad), ``<|im_start|>``, ``<|im_end|>`` (eos),
``<think>`` and ``</think>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from distill_lab.students.cache import build_once
from distill_lab.students.config import TinyArchConfig
from distill_lab.students.templates import CHATML_THINK

TOKENIZER_VERSION = "bytes-v1"
PAD, IM_START, IM_END, THINK, END_THINK = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, THINK, END_THINK]


def build_tiny_tokenizer():
    """A deterministic byte-level tokenizer: ids 0-4 special tokens, then the 256 byte symbols."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # 256 printable stand-ins for the bytes
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   additional_special_tokens=[IM_START, THINK, END_THINK])
    fast.chat_template = CHATML_THINK
    fast.padding_side = "right"
    return fast


def tiny_key(arch: TinyArchConfig) -> str:
    blob = json.dumps({"arch": asdict(arch), "tokenizer": TOKENIZER_VERSION, "seed": 0}, sort_keys=True)
    return "tiny-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_tiny_model(arch: TinyArchConfig, tokenizer):
    """Random-init ``Qwen3ForCausalLM`` (seed 0) sized by ``arch``; vocab = the tokenizer's."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=arch.hidden_size, num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads, num_key_value_heads=arch.num_key_value_heads,
        head_dim=arch.head_dim, intermediate_size=arch.intermediate_size,
        max_position_embeddings=arch.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    devnull_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = Qwen3ForCausalLM(config)
    finally:
        torch.random.set_rng_state(devnull_state)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def ensure_tiny(arch: TinyArchConfig, cache_dir: str | os.PathLike) -> Path:
    """Folder of the cached tiny student (model + tokenizer), created on first use."""
    def build(tmp: Path) -> None:
        tok = build_tiny_tokenizer()
        model = build_tiny_model(arch, tok)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "distill_lab_student.json").write_text(json.dumps({"source": "tiny", "arch": asdict(arch)}))

    return build_once(Path(cache_dir).expanduser() / tiny_key(arch), build, ready=("config.json", "tokenizer.json"))
