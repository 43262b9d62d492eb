"""Exports of a trained student: the adapter dir (peft, or a full checkpoint) and a merged HF model."""

from __future__ import annotations

import json
from pathlib import Path


def save_adapter(model, tokenizer, out: Path, adapter: str, state_dict: dict | None = None) -> Path:
    """``out`` gets a peft adapter (lora/qlora) or, for ``full``, a complete HF checkpoint plus
    ``distill_lab_adapter.json`` = ``{"kind": "full"}`` (what ``load_student(adapter_dir=...)`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    if state_dict is not None:  # gathered from FSDP2 shards
        model.save_pretrained(str(out), state_dict=state_dict)
    else:
        model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    kind = "full" if adapter == "full" else "peft"
    (out / "distill_lab_adapter.json").write_text(json.dumps({"kind": kind, "adapter": adapter}))
    return out


def export_merged(student_cfg, adapter_dir: Path, out: Path) -> Path:
    """Base + adapter merged into plain weights that ``AutoModelForCausalLM.from_pretrained`` loads.

    The base is reloaded unquantized (a QLoRA adapter merges into the full-precision base).
    """
    from dataclasses import replace

    from distill_lab.students import load_student

    base_cfg = replace(student_cfg, adapter="lora" if student_cfg.adapter == "qlora" else student_cfg.adapter)
    model, tok = load_student(base_cfg, adapter_dir=str(adapter_dir))
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def export_trained(cfg, run_dir: Path, adapter_dir: Path, artifacts: dict[str, str]) -> None:
    """The exports a finished training asks for, from ``adapter_dir``, added to ``artifacts``: ``merged/``
    (``train.export_merged``, or as the GGUF's source) and ``gguf/model-<dtype>.gguf`` (``export.gguf``).
    One place for a plain run and an lr grid's chosen trial (``lr_grid.py``)."""
    if not (cfg.train.export_merged or cfg.export.gguf):
        return
    from distill_lab.stages.train.gguf_export import write_gguf

    merged = adapter_dir  # a full fine-tune's adapter dir is already a plain HF checkpoint
    if cfg.student.adapter != "full":
        merged = export_merged(cfg.student, adapter_dir, run_dir / "merged")
        artifacts["merged"] = str(merged)
    if cfg.export.gguf:
        gguf_file = run_dir / "gguf" / f"model-{cfg.export.gguf_dtype}.gguf"
        artifacts["gguf"] = str(write_gguf(merged, gguf_file, cfg.export.gguf_dtype,
                                           name=f"distill_lab {cfg.student.name}"))
