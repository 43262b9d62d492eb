"""``load_student``: base model + tokenizer of a student config, with an adapter when asked.

Sources (``student.source``): ``tiny`` (built and cached locally), ``gguf_package`` (converted once
into the cache), ``hf`` (any HF id or local folder). Adapters (``student.adapter``): ``lora`` (peft),
``qlora`` (bitsandbytes 4-bit base + peft LoRA), ``full`` (every weight trained).

An ``adapter_dir`` written by the train stage is either a peft adapter (``adapter_config.json``) or,
for ``adapter=full``, a complete HF checkpoint (``config.json``, plus ``distill_lab_adapter.json``
saying ``{"kind": "full"}``); ``load_student`` understands both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from distill_lab.students.config import StudentConfig

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _torch_dtype(name: Any):
    import torch

    if name is None or isinstance(name, torch.dtype):
        return name
    return getattr(torch, DTYPES[str(name)])


def cache_dir(cfg: StudentConfig) -> Path:
    """``student.cache_dir`` with its ``${oc.env:...}`` default resolved (for configs built in Python)."""
    raw = cfg.cache_dir
    if "${" in raw:
        from omegaconf import OmegaConf

        raw = str(OmegaConf.create({"d": raw}).d)
    return Path(raw).expanduser()


def student_path(cfg: StudentConfig) -> Path | str:
    """Local folder (or HF id) holding the base checkpoint and tokenizer of ``cfg``."""
    if cfg.source == "tiny":
        from distill_lab.students.tiny import ensure_tiny

        return ensure_tiny(cfg.tiny, cache_dir(cfg))
    if cfg.source == "gguf_package":
        from distill_lab.students.gguf import ensure_gguf_student

        assert cfg.gguf_package and cfg.gguf_file, "validated in StudentConfig"
        return ensure_gguf_student(cfg.gguf_package, cfg.gguf_file, cache_dir(cfg))
    assert cfg.path, "validated in StudentConfig"
    return cfg.path


def load_tokenizer(cfg: StudentConfig, path: Path | str | None = None):
    """The student's tokenizer; its chat template renders ``reasoning_content`` as ``<think>``."""
    from transformers import AutoTokenizer

    from distill_lab.students.templates import CHATML_THINK

    tok = AutoTokenizer.from_pretrained(str(path or student_path(cfg)))
    if cfg.chat_template:
        tok.chat_template = cfg.chat_template
    elif not tok.chat_template:
        tok.chat_template = CHATML_THINK
    elif "reasoning_content" not in tok.chat_template and "<think>" not in tok.chat_template:
        # a template with no place for reasoning (e.g. plain ChatML): use ours
        tok.chat_template = CHATML_THINK
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def quantization_config(cfg: StudentConfig):
    from transformers import BitsAndBytesConfig

    q = cfg.quant
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant,
                              bnb_4bit_compute_dtype=_torch_dtype(q.compute_dtype),
                              bnb_4bit_quant_storage=_torch_dtype(q.quant_storage_dtype))


def adapter_kind(adapter_dir: str | Path) -> str:
    """``peft`` or ``full``: what the train stage wrote into ``adapter_dir``."""
    d = Path(adapter_dir)
    if (d / "adapter_config.json").is_file():
        return "peft"
    marker = d / "distill_lab_adapter.json"
    if marker.is_file() and json.loads(marker.read_text()).get("kind") == "full":
        return "full"
    if (d / "config.json").is_file():
        return "full"
    raise FileNotFoundError(f"{adapter_dir}: neither a peft adapter (adapter_config.json) nor a full "
                            f"checkpoint (config.json)")


def student_tokenizer(cfg: StudentConfig, adapter_dir: str | Path | None = None):
    """The tokenizer ``load_student(cfg, adapter_dir)`` pairs with its model: a full checkpoint's own when it
    carries one, else the base's. Loaded once, it serves a budget check before the model and then the model
    (``load_student(..., tokenizer=)``)."""
    if adapter_dir is not None and adapter_kind(adapter_dir) == "full" and \
            (Path(adapter_dir) / "tokenizer_config.json").is_file():
        return load_tokenizer(cfg, adapter_dir)
    return load_tokenizer(cfg)


def lora_config(cfg: StudentConfig):
    from peft import LoraConfig

    targets: Any = cfg.lora.target_modules
    if list(targets) == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=targets, use_rslora=cfg.lora.use_rslora, task_type="CAUSAL_LM")


def local_rank(env: Mapping[str, str] = os.environ) -> int:
    """This process's rank on its node: ``LOCAL_RANK`` (torchrun, Lightning's launcher), else Slurm's
    ``SLURM_LOCALID``, else 0 (one process, or rank 0 before Lightning starts the others)."""
    for key in ("LOCAL_RANK", "SLURM_LOCALID"):
        if env.get(key, "") != "":
            return int(env[key])
    return 0


def rank_device(accelerator: str, *, env: Mapping[str, str] = os.environ, cuda_devices: int | None = None) -> str | None:
    """The device this rank loads its student onto, from the first byte: ``cuda:<local rank>`` when
    training on GPUs, ``None`` (CPU, transformers' default) otherwise. Without it, every rank would load
    (and bitsandbytes quantise) onto the current CUDA device, cuda:0.

    ``cuda_devices``: how many CUDA devices this process sees (default: ask torch).
    """
    if accelerator == "cpu":
        return None
    if cuda_devices is None:
        import torch

        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_devices == 0:
        if accelerator == "gpu":
            raise RuntimeError("hardware.accelerator=gpu: this process sees no CUDA device")
        return None  # auto on a machine without GPUs
    rank = local_rank(env)
    if rank >= cuda_devices:
        raise RuntimeError(f"local rank {rank} has no GPU: this process sees {cuda_devices} CUDA device(s) "
                           f"(check hardware.devices and CUDA_VISIBLE_DEVICES)")
    return f"cuda:{rank}"


def load_student(student_cfg: StudentConfig, adapter_dir: str | Path | None = None, *,
                 for_training: bool = False, dtype: Any = None, device: str | None = None, tokenizer: Any = None):
    """Return ``(model, tokenizer)``.

    - ``adapter_dir`` given: the trained student (base + peft adapter, or the full checkpoint).
    - ``for_training``: the base wrapped for training per ``student.adapter`` (new LoRA/QLoRA adapter,
      or all weights trainable for ``full``); with ``adapter_dir`` too, the adapter stays trainable.
    - ``dtype``: weight dtype (default ``student.dtype``; fp32 for ``full`` training: the weights are the
      fp32 master copies and bf16 is only the compute dtype); QLoRA keeps its own storage dtype.
    - ``device``: where the weights are loaded (and quantised), e.g. ``rank_device(...)``; None: CPU.
    - ``tokenizer``: ``student_tokenizer(student_cfg, adapter_dir)`` already loaded, returned as it is.
    """
    from transformers import AutoModelForCausalLM

    cfg = student_cfg
    base_path = student_path(cfg)
    torch_dtype = _torch_dtype(dtype if dtype is not None else cfg.dtype)
    if for_training and cfg.adapter == "full" and dtype is None:
        torch_dtype = _torch_dtype("float32")  # fp32 master weights; bf16 is the compute dtype (hardware.precision)
    tok_path = base_path
    placement: dict[str, Any] = {}
    if device is not None:
        placement["device_map"] = {"": device}
        if device.startswith("cuda"):
            import torch

            torch.cuda.set_device(device)  # bitsandbytes quantises on the current device
    if adapter_dir is not None and adapter_kind(adapter_dir) == "full":
        tok_path = adapter_dir if (Path(adapter_dir) / "tokenizer_config.json").is_file() else base_path
        model = AutoModelForCausalLM.from_pretrained(str(adapter_dir), dtype=torch_dtype, **placement)
        model.requires_grad_(for_training)
        return model, tokenizer if tokenizer is not None else load_tokenizer(cfg, tok_path)

    kwargs: dict[str, Any] = {"dtype": torch_dtype, **placement}
    if cfg.adapter == "qlora":
        kwargs["quantization_config"] = quantization_config(cfg)
        kwargs["dtype"] = _torch_dtype(cfg.quant.compute_dtype)
    model = AutoModelForCausalLM.from_pretrained(str(base_path), **kwargs)
    tok = tokenizer if tokenizer is not None else load_tokenizer(cfg, tok_path)

    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=for_training)
    elif for_training and cfg.adapter in ("lora", "qlora"):
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg))
    elif for_training:  # full fine-tuning
        model.requires_grad_(True)
    if not for_training:
        model.eval()
    return model, tok
