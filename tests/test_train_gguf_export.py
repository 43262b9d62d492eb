"""GGUF export (``export.gguf=true``): files written by ``write_gguf`` are read back by independent readers
(transformers' own GGUF loader and tokenizer builder, ``gguf.GGUFReader``) and must give the HF model's
logits and the HF tokenizer's ids. The llama path (Q/K row permutation) is covered on a random tiny
Llama, and a test checks that skipping the permutation is caught."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
import torch

from distill_lab.errors import ConfigError
from distill_lab.stages.train import gguf_export
from distill_lab.stages.train.config import GGUF_DTYPES
from distill_lab.stages.train.gguf_export import check_supported, gguf_types, write_gguf
from distill_lab.students.loader import student_path
from distill_lab.students.tiny import build_tiny_tokenizer
from tests.conftest import compose_config
from tests.train_support import make_dataset, train

MESSAGES = [
    [{"role": "user", "content": "What is 12 + 30?"},
     {"role": "assistant", "content": "The answer is 42.", "reasoning_content": "2+0=2, 1+3=4"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo, wörld! 😀 tabs\tand\nlines"}],
]
# max |logit difference| allowed, relative to the largest |logit| of the HF model
TOLERANCE = {"f32": 1e-6, "f16": 3e-3, "q8_0": 3e-2}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than two on a shared machine
    yield
    torch.set_num_threads(old)


def field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


def load_gguf(path: Path):
    """Model and tokenizer as transformers' GGUF loader reads them from ``path`` alone."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    arch = field(gguf.GGUFReader(path), "general.architecture")
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    # transformers 5.24 reads no `qwen3.attention.key_length` and would keep Qwen3Config's head_dim=128
    config.head_dim = field(gguf.GGUFReader(path), f"{arch}.attention.key_length")
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, config=config).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def prompts(tok) -> list[list[int]]:
    return [tok(tok.apply_chat_template(m, tokenize=False), add_special_tokens=True)["input_ids"] for m in MESSAGES]


def max_rel_logit_diff(ref_model, other_model, tok) -> float:
    worst = 0.0
    with torch.no_grad():
        for ids in prompts(tok):
            x = torch.tensor([ids])
            a, b = ref_model(input_ids=x).logits.float(), other_model(input_ids=x).logits.float()
            worst = max(worst, float((a - b).abs().max() / a.abs().max()))
    return worst


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return Path(student_path(compose_config(["student=tiny"], stage="eval").student))


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A random Llama (2 layers, 4 heads over 2 KV heads, untied output) with the tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         initializer_range=0.2, tie_word_embeddings=False, rope_theta=10000.0,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("dtype", ["f32", "f16", "q8_0"])
def test_tiny_qwen3_gguf_reloads_to_the_same_logits_and_token_ids(tiny_dir, tmp_path, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = write_gguf(tiny_dir, tmp_path / f"tiny-{dtype}.gguf", dtype)
    ref, ref_tok = AutoModelForCausalLM.from_pretrained(tiny_dir).eval(), AutoTokenizer.from_pretrained(tiny_dir)
    model, tok = load_gguf(path)
    assert type(model).__name__ == "Qwen3ForCausalLM"
    assert prompts(tok) == prompts(ref_tok)  # chat template, special tokens and bytes all survive
    assert tok.chat_template == ref_tok.chat_template
    diff = max_rel_logit_diff(ref, model, ref_tok)
    assert diff <= TOLERANCE[dtype], (dtype, diff)


def test_tiny_qwen3_gguf_metadata(tiny_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    path = write_gguf(tiny_dir, tmp_path / "tiny.gguf", "f16", name="tiny student")
    r = gguf.GGUFReader(path)
    cfg, tok = AutoConfig.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)
    assert field(r, "general.architecture") == "qwen3"
    assert field(r, "general.name") == "tiny student"
    assert field(r, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    assert field(r, "qwen3.block_count") == cfg.num_hidden_layers == 2
    assert field(r, "qwen3.embedding_length") == cfg.hidden_size
    assert field(r, "qwen3.feed_forward_length") == cfg.intermediate_size
    assert field(r, "qwen3.context_length") == cfg.max_position_embeddings
    assert (field(r, "qwen3.attention.head_count"), field(r, "qwen3.attention.head_count_kv")) == (4, 2)
    assert field(r, "qwen3.attention.key_length") == field(r, "qwen3.attention.value_length") == cfg.head_dim
    assert field(r, "qwen3.rope.freq_base") == pytest.approx(cfg.rope_parameters["rope_theta"])
    assert field(r, "qwen3.attention.layer_norm_rms_epsilon") == pytest.approx(cfg.rms_norm_eps)
    # 11 tensors per block (q, k, v, o, q/k norms, 2 norms, 3 MLP) + embeddings + final norm; tied: no output
    names = {t.name: t for t in r.tensors}
    assert len(names) == 11 * 2 + 2 and "output.weight" not in names
    assert names["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert names["blk.1.attn_q_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert names["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert names["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    # tokenizer: one entry per embedding row, special tokens as CONTROL, an (empty) merges key, template
    tokens = field(r, "tokenizer.ggml.tokens")
    assert field(r, "tokenizer.ggml.model") == "gpt2" and len(tokens) == cfg.vocab_size == len(tok)
    assert "tokenizer.ggml.merges" in r.fields and field(r, "tokenizer.ggml.merges") == []
    types = field(r, "tokenizer.ggml.token_type")
    eos = field(r, "tokenizer.ggml.eos_token_id")
    assert tokens[eos] == "<|im_end|>" and types[eos] == gguf.TokenType.CONTROL
    assert tokens[field(r, "tokenizer.ggml.padding_token_id")] == "<|endoftext|>"
    assert types[tok.convert_tokens_to_ids("a")] == gguf.TokenType.NORMAL
    assert field(r, "tokenizer.chat_template") == tok.chat_template
    assert field(r, "tokenizer.ggml.add_bos_token") is False


def test_tiny_llama_gguf_reloads_to_the_same_logits(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = write_gguf(tiny_llama_dir, tmp_path / "llama.gguf", "f32")
    r = gguf.GGUFReader(path)
    assert field(r, "general.architecture") == "llama"
    assert "output.weight" in {t.name for t in r.tensors}  # untied head
    ref = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    model, tok = load_gguf(path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert prompts(tok) == prompts(AutoTokenizer.from_pretrained(tiny_llama_dir))
    assert max_rel_logit_diff(ref, model, tok) <= TOLERANCE["f32"]


def test_llama_export_without_the_qk_permutation_is_caught(tiny_llama_dir, tmp_path, monkeypatch):
    """The reload comparison is sensitive to the rotary layout: the HF row order, unpermuted, fails it."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setattr(gguf_export, "interleave_rotary_rows", lambda w, n_head: w)
    path = write_gguf(tiny_llama_dir, tmp_path / "llama-unpermuted.gguf", "f32")
    ref = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    model, tok = load_gguf(path)
    assert max_rel_logit_diff(ref, model, tok) > 0.3  # measured: 1.3


def test_interleave_rotary_rows_pairs_each_half_per_head():
    import numpy as np

    w = np.arange(8)[:, None].repeat(2, axis=1)  # 2 heads of 4 rows: halves (0,1|2,3) and (4,5|6,7)
    assert gguf_export.interleave_rotary_rows(w, n_head=2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def _hf_pre_tokenizer(*parts) -> dict:
    """The ``pre_tokenizer`` entry of a tokenizer.json with ``parts`` (as the tokenizers library writes it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = parts[0] if len(parts) == 1 else pre_tokenizers.Sequence(list(parts))
    return json.loads(tok.to_str())["pre_tokenizer"]


def _pre_tokenizer_cases():
    from tokenizers import Regex
    from tokenizers.pre_tokenizers import ByteLevel, Digits, Split

    def split(regex):
        return Split(Regex(regex), behavior="isolated")

    return [
        ((ByteLevel(add_prefix_space=False, use_regex=True),), "gpt-2"),  # SmolLM2 as our students load it
        ((ByteLevel(add_prefix_space=False, use_regex=False),), "default"),  # the tiny student's byte vocab
        ((Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)), "smollm"),
        ((split(gguf_export._QWEN2_SPLIT), ByteLevel(add_prefix_space=False, use_regex=False)), "qwen2"),
        ((split(gguf_export._LLAMA3_SPLIT), ByteLevel(add_prefix_space=False, use_regex=False)), "llama-bpe"),
    ]


def test_pre_tokenizer_is_named_as_llama_cpp_names_it():
    """``tokenizer.ggml.pre`` must be llama.cpp's name for the split, or llama.cpp refuses the file: GPT-2's
    byte-level regex is "gpt-2" (the export once wrote "gpt2", and llama.cpp 0.3.36 would not load SmolLM2)."""
    for parts, name in _pre_tokenizer_cases():
        assert gguf_export._pre_tokenizer_name(_hf_pre_tokenizer(*parts)) == name, parts
        assert name in gguf_export.PRE_TOKENIZERS
    # a split llama.cpp has no name for falls back to "default" (loads; may split differently)
    from tokenizers.pre_tokenizers import Whitespace
    assert gguf_export._pre_tokenizer_name(_hf_pre_tokenizer(Whitespace())) == "default"


def test_unsupported_architecture_is_named():
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        check_supported({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(ValueError, match="rope scaling"):
        check_supported({"model_type": "llama", "rope_parameters": {"rope_type": "llama3", "factor": 8.0}})


def test_gguf_dtype_is_validated_naming_the_field():
    assert compose_config(["student=tiny"], stage="train").export.gguf_dtype == "f16"
    with pytest.raises(ConfigError, match=r"export\.gguf_dtype"):
        compose_config(["student=tiny", "export.gguf_dtype=q4_k"], stage="train")
    for dtype in GGUF_DTYPES:  # every value the config accepts has a GGUF tensor type
        gguf_types(dtype)


def test_train_stage_exports_gguf_of_the_trained_student(tmp_path):
    from transformers import AutoModelForCausalLM

    dataset = make_dataset(tmp_path, size=16)
    run = tmp_path / "run"
    res = train(dataset, run, "train.max_steps=3", "train.batch_size=4", "optimizer.lr=1e-2",
                "export.gguf=true", "export.gguf_dtype=f32")
    path = run / "gguf" / "model-f32.gguf"
    assert res.artifacts["gguf"] == str(path) and path.is_file()
    assert res.artifacts["merged"] == str(run / "merged")  # the GGUF is written from the merged model
    assert json.loads((run / "manifest.json").read_text())["artifacts"]["gguf"] == str(path)
    assert field(gguf.GGUFReader(path), "general.name") == "distill_lab tiny"
    merged = AutoModelForCausalLM.from_pretrained(run / "merged").eval()
    model, tok = load_gguf(path)
    assert max_rel_logit_diff(merged, model, tok) <= TOLERANCE["f32"]
    base = AutoModelForCausalLM.from_pretrained(student_path(compose_config(["student=tiny"]).student)).eval()
    assert max_rel_logit_diff(base, model, tok) > 1e-3  # the trained weights, not the base student's


def test_train_stage_full_fine_tune_exports_gguf_from_the_checkpoint(tmp_path):
    dataset = make_dataset(tmp_path, size=16)
    res = train(dataset, tmp_path / "full", "student.adapter=full", "train.max_steps=1", "train.batch_size=4",
                "export.gguf=true", "export.gguf_dtype=bf16")
    assert "merged" not in res.artifacts  # the full checkpoint is the merged model
    r = gguf.GGUFReader(res.artifacts["gguf"])
    assert field(r, "general.file_type") == gguf.LlamaFileType.MOSTLY_BF16
    assert {t.name: t for t in r.tensors}["blk.0.ffn_up.weight"].tensor_type == gguf.GGMLQuantizationType.BF16


@pytest.mark.slow
def test_smollm2_gguf_reloads_to_the_same_logits_and_token_ids(tmp_path):
    """The real llama student (SmolLM2-135M, a tokenizer with 48,900 merges) through f16 and back."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(student_path(compose_config(["student=smollm2_135m"], stage="eval").student))
    path = write_gguf(src, tmp_path / "smollm2-f16.gguf", "f16")
    r = gguf.GGUFReader(path)
    assert field(r, "general.architecture") == "llama" and field(r, "tokenizer.ggml.pre") == "gpt-2"
    assert len(field(r, "tokenizer.ggml.merges")) == 48900
    ref, ref_tok = AutoModelForCausalLM.from_pretrained(src).eval(), AutoTokenizer.from_pretrained(src)
    model, tok = load_gguf(path)
    assert prompts(tok) == prompts(ref_tok)
    assert max_rel_logit_diff(ref, model, ref_tok) <= TOLERANCE["f16"]


# ------------------------------------------------------------------- llama.cpp itself (slow, optional)
def _llama_cpp():
    return pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed: it builds from source (pip install "
        "'llama-cpp-python>=0.3,<0.4', minutes of CPU), so it is no project dependency")


def _greedy_hf(model, ids: list[int], n: int, eos: int) -> list[int]:
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos)
    return out[0, len(ids):].tolist()


def _greedy_llama_cpp(llm, ids: list[int], n: int, eos: int) -> list[int]:
    out = []
    for t in llm.generate(ids, top_k=1, temp=0.0, reset=True):
        out.append(t)
        if t == eos or len(out) == n:
            return out
    return out


@pytest.mark.slow
def test_llama_cpp_knows_every_pre_tokenizer_name_the_export_writes(tiny_llama_dir, tmp_path, monkeypatch):
    llama_cpp = _llama_cpp()
    for name in gguf_export.PRE_TOKENIZERS:
        monkeypatch.setattr(gguf_export, "_pre_tokenizer_name", lambda pre, name=name: name)
        path = write_gguf(tiny_llama_dir, tmp_path / f"pre-{name}.gguf", "f32")
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)  # raises on an unknown name
        llm.close()


@pytest.mark.slow
@pytest.mark.parametrize("student", ["tiny_llama", "smollm2_135m"])
def test_gguf_in_llama_cpp_tokenizes_and_decodes_greedily_like_hf(student, tiny_llama_dir, tmp_path):
    """The export as llama.cpp runs it: the same prompt token ids from the chat text and the same greedy
    completion tokens as the HF model (f32 weights, so any difference is the export's, not rounding)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llama_cpp = _llama_cpp()
    src = tiny_llama_dir if student == "tiny_llama" else Path(
        student_path(compose_config([f"student={student}"], stage="eval").student))
    path = write_gguf(src, tmp_path / f"{student}.gguf", "f32")
    ref, tok = AutoModelForCausalLM.from_pretrained(src).eval(), AutoTokenizer.from_pretrained(src)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=torch.get_num_threads(), verbose=False)
    try:
        msgs = [*MESSAGES, [{"role": "user", "content": "What is 127 + 385? Answer with the number."}]]
        for m in msgs:
            text = tok.apply_chat_template(m[:-1] if m[-1]["role"] == "assistant" else m, tokenize=False,
                                           add_generation_prompt=True)
            ids = tok(text)["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids, text
            hf = _greedy_hf(ref, ids, 24, eos)
            assert len(hf) >= 8, hf  # a real comparison, not one token
            assert _greedy_llama_cpp(llm, ids, 24, eos) == hf, (text, tok.decode(hf))
    finally:
        llm.close()
