"""GGUF export of a merged HF checkpoint, for llama.cpp and the tools built on it (ollama, LM Studio, ...).

``write_gguf(model_dir, out_file, dtype)`` reads ``config.json``, the safetensors weights and the
tokenizer of a plain HF checkpoint (what ``export_merged`` writes) and writes one GGUF file with the
``gguf`` package:

- metadata: architecture (``llama`` for ``LlamaForCausalLM``, ``qwen3`` for ``Qwen3ForCausalLM``; any
  other raises naming it), context / embedding / feed-forward lengths, block count, head counts, head
  size, rope base, RMS-norm epsilon, file type;
- tokenizer: byte-level BPE as ``tokenizer.ggml.model = gpt2``: tokens in the byte alphabet, token types
  (added special tokens CONTROL, other added tokens USER_DEFINED, ids past the tokenizer UNUSED),
  merges, pre-tokenizer name (``tokenizer.ggml.pre``: one of ``PRE_TOKENIZERS``, the names llama.cpp's
  loader knows; it refuses a file with any other name), bos / eos / pad / unk ids, the chat template;
- tensors under GGUF names. For ``llama`` the rows of ``q_proj`` / ``k_proj`` are permuted per head from
  HF's rotate-half layout to the interleaved pairs llama.cpp rotates (transformers' GGUF loader undoes
  exactly this); ``qwen3`` uses NeoX-style rope in llama.cpp, the HF layout, so nothing is permuted.
  1-D tensors (norms, biases) stay f32; tied embeddings get no ``output.weight``.

``dtype``: ``f32``, ``f16``, ``bf16`` or ``q8_0`` (2-D tensors whose rows are not a multiple of 32 fall
back to f16, as llama.cpp's converter does).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Arch:
    gguf_name: str  # general.architecture
    permute_qk: bool  # llama.cpp rotates interleaved pairs (llama) rather than halves (NeoX: qwen3)


ARCHS = {"llama": _Arch("llama", permute_qk=True), "qwen3": _Arch("qwen3", permute_qk=False)}

# byte-level pre-tokenizer splits that llama.cpp knows by name (tokenizer.ggml.pre)
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_SPLITS = {_QWEN2_SPLIT: "qwen2", _LLAMA3_SPLIT: "llama-bpe"}
# Every tokenizer.ggml.pre this module writes, with the HF pre-tokenizer it stands for. The names are
# llama.cpp's (src/llama-vocab.cpp): it splits text by a regex list chosen by that name and refuses to
# load a file whose name it does not know ("unknown pre-tokenizer type"). GPT-2's is "gpt-2", not the
# "gpt2" of tokenizer.ggml.model and general.architecture.
PRE_TOKENIZERS = {
    "gpt-2": "ByteLevel with its GPT-2 regex",
    "default": "ByteLevel without regex (no llama.cpp name splits that way; exact for a merge-free byte vocab)",
    "smollm": "Digits(individual_digits) then ByteLevel with its GPT-2 regex",
    "qwen2": "Split(Qwen2 regex) then ByteLevel",
    "llama-bpe": "Split(Llama 3 regex) then ByteLevel",
}


def gguf_types(dtype: str):
    """``(tensor type for 2-D weights, general.file_type)`` of a ``export.gguf_dtype`` value."""
    F = gguf.LlamaFileType  # noqa: N806
    table = {"f32": (Q.F32, F.ALL_F32), "f16": (Q.F16, F.MOSTLY_F16), "bf16": (Q.BF16, F.MOSTLY_BF16),
             "q8_0": (Q.Q8_0, F.MOSTLY_Q8_0)}
    if dtype not in table:
        raise ValueError(f"export.gguf_dtype: {dtype!r} is not one of {sorted(table)}")
    return table[dtype]


def check_supported(config) -> _Arch:
    """The GGUF architecture of an HF config (object or dict); raises naming an unsupported one."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    model_type = get("model_type")
    if model_type not in ARCHS:
        raise ValueError(f"export.gguf: no GGUF export for architecture {get('architectures')} "
                         f"(model_type {model_type!r}); supported model types: {sorted(ARCHS)}")
    rope = get("rope_parameters") or get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"export.gguf: rope scaling {rope} is not exported (only plain rope)")
    return ARCHS[model_type]


def write_gguf(model_dir: Path, out_file: Path, dtype: str = "f16", name: str | None = None) -> Path:
    """Write ``out_file`` (atomically) from the HF checkpoint in ``model_dir``; returns ``out_file``."""
    model_dir, out_file = Path(model_dir), Path(out_file)
    config = json.loads((model_dir / "config.json").read_text())
    arch = check_supported(config)
    qtype, file_type = gguf_types(dtype)
    n_vocab = config["vocab_size"]

    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    writer = _Writer(tmp, arch.gguf_name)
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name or model_dir.name)
        _add_hparams(writer, config, int(file_type))
        _add_tokenizer(writer, model_dir, n_vocab)
        for gguf_name, data, raw_type in _tensors(model_dir, config, arch, qtype):
            writer.add_tensor(gguf_name, data, raw_dtype=raw_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)  # no half-written file left behind
        raise
    writer.close()
    os.replace(tmp, out_file)
    log.info("gguf: wrote %s (%s, %.1f MB)", out_file, dtype, out_file.stat().st_size / 1e6)
    return out_file


# ------------------------------------------------------------------------------------------ helpers
class _Writer(gguf.GGUFWriter):
    """``GGUFWriter`` that can write an empty typed array: a BPE vocabulary without merges (the tiny
    student's) still needs the ``tokenizer.ggml.merges`` key, llama.cpp refuses a gpt2 tokenizer without it."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype == gguf.GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
            head = self._pack("I", vtype) if add_vtype else b""
            return head + self._pack("I", sub_type) + self._pack("Q", 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def _add_hparams(w, config: dict, file_type: int) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    rope = config.get("rope_parameters") or {}
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(config.get("num_key_value_heads") or heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    w.add_vocab_size(config["vocab_size"])
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _pre_tokenizer_name(pre: dict | None) -> str:
    """llama.cpp's name for the way text is split before BPE (``tokenizer.ggml.pre``)."""
    parts = (pre or {}).get("pretokenizers", [pre] if pre else [])
    kinds = [p["type"] for p in parts]
    if kinds == ["ByteLevel"]:
        return "gpt-2" if parts[0].get("use_regex", True) else "default"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits") and parts[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"]:
        regex = parts[0].get("pattern", {}).get("Regex")
        if regex in _SPLITS:
            return _SPLITS[regex]
    log.warning("gguf: unknown pre-tokenizer %s; writing 'default' (llama.cpp may split text differently)", kinds)
    return "default"


def _add_tokenizer(w, model_dir: Path, n_vocab: int) -> None:
    """Byte-level BPE vocabulary, merges, special ids and chat template (``tokenizer.ggml.*``)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    spec = json.loads(tok.backend_tokenizer.to_str())
    model, decoder = spec["model"], spec.get("decoder") or {}
    if model["type"] != "BPE" or decoder.get("type") != "ByteLevel":
        raise ValueError(f"export.gguf: only byte-level BPE tokenizers are exported; {model_dir} has a "
                         f"{model['type']} model with a {decoder.get('type')} decoder")
    if len(tok) > n_vocab:
        raise ValueError(f"export.gguf: the tokenizer has {len(tok)} tokens, the model's vocab_size is {n_vocab}")
    # one entry per embedding row: ids the tokenizer never produces are padding, as llama.cpp writes them
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in model["vocab"].items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for t in spec["added_tokens"]:
        i = t["id"]  # added tokens are stored as their text, not in the byte alphabet
        tokens[i] = t["content"]
        types[i] = gguf.TokenType.CONTROL if t["special"] else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(_pre_tokenizer_name(spec.get("pre_tokenizer")))
    w.add_token_list(tokens)
    w.add_token_types([int(t) for t in types])
    w.add_key_value(gguf.Keys.Tokenizer.MERGES, merges, gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)
    for token_id, add in ((tok.bos_token_id, w.add_bos_token_id), (tok.eos_token_id, w.add_eos_token_id),
                          (tok.pad_token_id, w.add_pad_token_id), (tok.unk_token_id, w.add_unk_token_id)):
        if token_id is not None:
            add(int(token_id))
    probe = tok("a")["input_ids"]  # what the HF tokenizer adds around a text
    w.add_add_bos_token(tok.bos_token_id is not None and probe[0] == tok.bos_token_id)
    w.add_add_eos_token(tok.eos_token_id is not None and probe[-1] == tok.eos_token_id)
    if tok.chat_template:
        w.add_chat_template(tok.chat_template)


def _read_state_dict(model_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint's safetensors files, as float32 numpy arrays."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"export.gguf: no *.safetensors in {model_dir}")
    out = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():
                out[k] = st.get_tensor(k).float().numpy()
    return out


def interleave_rotary_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp interleaved rows, per head.

    In each head of ``head_dim`` rows, HF pairs row ``i`` with row ``i + head_dim/2``; llama.cpp pairs
    rows ``2i`` and ``2i+1``. So new row ``2i`` = old row ``i``, new row ``2i+1`` = old row ``i + half``.
    """
    rows = w.shape[0]
    assert rows % (2 * n_head) == 0, f"{rows} rows do not split into {n_head} heads of even size"
    half = rows // n_head // 2
    return w.reshape(n_head, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model_dir: Path, config: dict, arch: _Arch, qtype):
    """``(gguf name, data, raw ggml type or None)`` for every tensor, converted to its stored type."""
    gguf_arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch.gguf_name)
    names = gguf.get_tensor_name_map(gguf_arch, config["num_hidden_layers"])
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    tied = config.get("tie_word_embeddings", False)
    for hf_name, data in _read_state_dict(model_dir).items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"export.gguf: no GGUF name for tensor {hf_name!r} of architecture {arch.gguf_name}")
        if arch.permute_qk and ".self_attn.q_proj." in hf_name:
            data = interleave_rotary_rows(data, heads)
        elif arch.permute_qk and ".self_attn.k_proj." in hf_name:
            data = interleave_rotary_rows(data, kv_heads)
        yield (gguf_name, *_convert(data, qtype))


def _convert(data: np.ndarray, qtype):
    """``(array, raw_dtype)`` as ``GGUFWriter.add_tensor`` takes them; 1-D tensors stay f32."""
    if data.ndim == 1 or qtype == Q.F32:
        return data.astype(np.float32), None
    if qtype == Q.F16 or (qtype == Q.Q8_0 and not gguf.quants.Q8_0.can_quantize(data)):
        return data.astype(np.float16), None
    return gguf.quants.quantize(data, qtype), qtype
