"""The ``train`` stage: dataset folder -> student trained by SFT -> ``<run_dir>/adapter``.

Read top to bottom: ``_setup_data`` (rows -> audited examples), ``_setup_model`` (student + adapter),
``_setup_trainer`` (hardware -> Lightning), fit (resuming when asked), then the exports.

Artifacts: ``adapter/`` (peft adapter, or for ``student.adapter=full`` a complete HF checkpoint; both
reload with ``load_student(cfg.student, adapter_dir=...)``), ``train_log.jsonl`` (one line per step:
loss, lr, grad norm, supervised tokens/s, padding share, peak memory; and validation losses),
``checkpoints/`` when ``train.checkpoint_every_n_steps`` > 0, and ``merged/`` when
``train.export_merged``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from distill_lab.artifacts.run_cost import machine
from distill_lab.errors import ConfigError
from distill_lab.stages.common import StageResult
from distill_lab.stages.train.features import FeatureStats, build_examples, dose_per_family
from distill_lab.stages.train.late_signal import finish_on_late_requeue_signal, requeue_signal_restored
from distill_lab.stages.train.packing import Example

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


def _setup_data(cfg: Config, tokenizer, hold_val: bool = False) -> tuple[list[Example], list[Example], FeatureStats]:
    from distill_lab.artifacts.rows import load_rows

    if not cfg.train.dataset_dir:
        raise ConfigError("train.dataset_dir: required (a dataset folder written by `distill-lab generate`)")
    rows = load_rows(cfg.train.dataset_dir, split="train")
    if not rows:
        raise ConfigError(f"train.dataset_dir: {cfg.train.dataset_dir} has no rows with split=train")
    examples, stats = build_examples(rows, tokenizer, cfg.data, source=str(Path(cfg.train.dataset_dir) / "rows.jsonl"))
    val: list[Example] = []
    if (cfg.train.val_every_n_steps > 0 or hold_val) and cfg.data.val_fraction > 0 and len(examples) > 1:
        g = torch.Generator().manual_seed(cfg.seed + 17)
        order = torch.randperm(len(examples), generator=g).tolist()
        k = max(1, round(cfg.data.val_fraction * len(examples)))
        held = set(order[:k])
        val = [e for i, e in enumerate(examples) if i in held]
        examples = [e for i, e in enumerate(examples) if i not in held]
    stats.per_family = dose_per_family(examples, rows)  # after the validation hold-out: what trains
    return examples, val, stats


def plan_steps(cfg: Config, schedule, examples: list[Example]) -> tuple[int, dict[str, Any] | None]:
    """The run's optimizer steps: ``train.epochs`` or ``train.max_steps``, or with ``train.token_budget`` the
    fewest steps whose rows hold the budget's tokens (the schedule is fixed in advance, so this is exact),
    with the epochs or max_steps as a cap it must fit. Returns (steps, the budget's record or None)."""
    from distill_lab.stages.train.datamodule import n_targets

    tc = cfg.train
    plain = schedule.steps_for_epochs(tc.epochs) if tc.epochs else tc.max_steps
    if tc.token_budget is None:
        return plain, None
    unit = tc.token_budget_unit
    per_row = [n_targets(e) if unit == "supervised" else len(e) for e in examples]  # counted once per row
    steps, got = schedule.steps_for_tokens(tc.token_budget, per_row.__getitem__, plain)
    if got < tc.token_budget:
        rows = schedule.rows_per_step
        if tc.epochs:
            raise ConfigError(f"train.token_budget: {tc.token_budget} {unit} tokens are more than train.epochs="
                              f"{tc.epochs} pass(es) over the {len(examples)} training rows hold ({got} in {steps} "
                              f"steps of {rows} rows); raise train.epochs, or lower train.token_budget")
        raise ConfigError(f"train.token_budget: {tc.token_budget} {unit} tokens need more than train.max_steps="
                          f"{tc.max_steps} steps of {rows} rows (those hold {got}); with a token budget "
                          "train.max_steps is a cap: raise it, or lower train.token_budget")
    return steps, {"unit": unit, "budget": tc.token_budget, "steps": steps, "tokens": got}


def _setup_model(cfg: Config, precision: str | None = None):
    """The student, with the run's backend (``backends/select.py``) chosen and prepared once. ``precision``:
    the one that runs; None decides it now, for this machine and the student's width
    (``stages/train/strategy.py::effective_precision``). It is the returned report's ``precision``."""
    from distill_lab.backends.precision import hidden_size_of
    from distill_lab.backends.select import RunTraits, device_of, select_backend
    from distill_lab.stages.train.strategy import effective_precision
    from distill_lab.students import load_student
    from distill_lab.students.loader import rank_device

    model, tok = load_student(cfg.student, for_training=True, device=rank_device(cfg.hardware.accelerator))
    if precision is None:
        precision = effective_precision(cfg.hardware, hidden_size_of(model.config))
    traits = RunTraits(device=device_of(cfg.hardware.accelerator), precision=precision,
                       quantized=cfg.student.adapter == "qlora", strategy=cfg.hardware.strategy)
    backend = select_backend(cfg.hardware.kernels, traits)
    report = backend.prepare(model)
    log.info("train: %s", report.line())
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.config.use_cache = False
    # from_pretrained returns eval mode and Lightning keeps module modes as they are: without this,
    # LoRA dropout and gradient checkpointing (both active only in training mode) would silently be off
    model.train()
    return model, tok, backend, report


def find_checkpoint(out_dir: Path, resume: str) -> str | None:
    """``never`` -> None; ``auto`` -> the newest readable ``checkpoints/step-*.ckpt``; else the path given."""
    if resume == "never":
        return None
    if resume != "auto":
        if not Path(resume).exists():
            raise ConfigError(f"train.resume: checkpoint {resume} does not exist")
        return resume
    ckpts = sorted((out_dir / "checkpoints").glob("step-*.ckpt"), reverse=True)
    for c in ckpts:
        if c.is_dir():
            return str(c)  # a distributed (FSDP2) checkpoint folder
        try:  # a file cut short by a kill is skipped
            torch.load(c, map_location="cpu", weights_only=False, mmap=True)
            return str(c)
        except Exception as e:  # noqa: BLE001 - any unreadable file is skipped, and said so
            log.warning("resume=auto: skipping unreadable checkpoint %s (%s)", c, e)
    return None


def _trim_step_log(step_log: Path, ckpt: str) -> None:
    """Drop log lines of steps after the checkpoint (a killed run may have logged past it)."""
    m = re.search(r"step-(\d+)", Path(ckpt).name)
    if not m or not step_log.exists():
        return
    last = int(m.group(1))
    lines = [ln for ln in step_log.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= last]
    step_log.write_text("".join(ln + "\n" for ln in lines))


def _setup_trainer(cfg: Config, out_dir: Path, run_dir: Path, total_steps: int, has_val: bool, precision: str):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from distill_lab.console import interactive
    from distill_lab.stages.train.strategy import trainer_kwargs

    callbacks: list[Any] = []
    every = cfg.train.checkpoint_every_n_steps
    if every > 0:
        callbacks.append(ModelCheckpoint(dirpath=str(out_dir / "checkpoints"), filename="step-{step:06d}",
                                         every_n_train_steps=every, save_top_k=-1, auto_insert_metric_name=False,
                                         save_on_train_epoch_end=False))
    logger = None
    try:
        from distill_lab.tracking.loggers import build_logger

        logger = build_logger(cfg, "train", run_dir)
    except ImportError:  # pragma: no cover - the loggers module ships with the package
        logger = None
    return L.Trainer(
        **trainer_kwargs(cfg.hardware, precision), max_steps=total_steps, max_epochs=-1, logger=logger or False,
        callbacks=callbacks, enable_checkpointing=every > 0, enable_progress_bar=interactive(),
        enable_model_summary=False, use_distributed_sampler=False, num_sanity_val_steps=0,
        # a val slice without periodic validation (an lr_grid trial): validated once, after the last step
        val_check_interval=(cfg.train.val_every_n_steps or total_steps) if has_val else None,
        check_val_every_n_epoch=None if has_val else 1, limit_val_batches=1.0 if has_val else 0,
        log_every_n_steps=cfg.train.log_every_n_steps, default_root_dir=str(out_dir),
        deterministic=False,
    )


def _finish_logger(trainer) -> None:
    """Close this stage's W&B run (a pipeline or an in-process sweep opens the next stage's run after it)."""
    exp = getattr(trainer.logger, "experiment", None) if trainer.logger is not None and trainer.is_global_zero else None
    if exp is not None and callable(getattr(exp, "finish", None)):
        exp.finish()


def _full_state_dict(module) -> dict[str, torch.Tensor] | None:
    """Gathered (unsharded) state dict under FSDP2, on CPU; None when not sharded."""
    if not getattr(module, "_sharded", False):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def run(cfg: Config, run_dir: Path) -> StageResult:
    if cfg.train.lr_grid:
        from distill_lab.stages.train.lr_grid import run_grid

        return run_grid(cfg, Path(run_dir), train_once)
    return train_once(cfg, run_dir)


def train_once(cfg: Config, run_dir: Path, *, final_val: bool = False, exports: bool = True) -> StageResult:
    """One training at ``cfg.optimizer.lr``. ``final_val``: hold out the validation slice whatever
    ``train.val_every_n_steps`` says and measure it once more after the last step (an lr trial).
    ``exports``: write the merged / GGUF exports the config asks for (an lr trial does not: the grid exports
    the chosen adapter once; its checks, e.g. a GGUF-less architecture, still run before training)."""
    with requeue_signal_restored():  # the next trial's fit gets Lightning's requeue handler (late_signal.py)
        return _train_once(cfg, run_dir, final_val=final_val, exports=exports)


def _train_once(cfg: Config, run_dir: Path, *, final_val: bool, exports: bool) -> StageResult:
    import lightning as L

    from distill_lab.stages.train.datamodule import SFTDataModule, layout_for, n_targets
    from distill_lab.stages.train.export import export_trained, save_adapter
    from distill_lab.stages.train.gguf_export import check_supported
    from distill_lab.stages.train.module import SFTModule, _unwrap

    if cfg.hardware.threads:
        torch.set_num_threads(cfg.hardware.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(run_dir)
    out_dir = Path(cfg.train.output_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    model, tok, backend, report = _setup_model(cfg)
    precision = report.precision  # the precision that runs (backends/precision.py)
    if cfg.export.gguf:
        check_supported(model.config)  # an architecture without GGUF export fails now, not after training
    train_ex, val_ex, stats = _setup_data(cfg, tok, hold_val=final_val)
    if final_val and not val_ex:
        raise ConfigError(f"train.lr_grid: the learning rate is chosen on a validation slice of the train rows, and "
                          f"data.val_fraction={cfg.data.val_fraction} of {len(train_ex)} rows leaves none; "
                          "set data.val_fraction > 0")
    world = cfg.hardware.devices * cfg.hardware.num_nodes
    dm = SFTDataModule(train_ex, val_ex, batch_size=cfg.train.batch_size, grad_accum=cfg.train.grad_accum,
                       total_steps=0, seed=cfg.seed, pad_id=int(tok.pad_token_id),
                       layout=layout_for(cfg.data.packing, cfg.data.padding_free), max_length=cfg.data.max_length,
                       num_workers=cfg.data.num_workers, world_size=world)
    total, budget = plan_steps(cfg, dm.schedule, train_ex)
    dm.total_steps = total
    ckpt = find_checkpoint(out_dir, cfg.train.resume)
    step_log = out_dir / "train_log.jsonl"
    if ckpt is None and step_log.exists():
        step_log.unlink()
    elif ckpt is not None:
        _trim_step_log(step_log, ckpt)
    module = SFTModule(cfg, model, total_steps=total, backend=backend, step_log=step_log)
    trainer = _setup_trainer(cfg, out_dir, run_dir, total, has_val=bool(val_ex), precision=precision)
    log.info("train: %d rows (%d val), %d steps of %d rows, layout %s, resume from %s", len(train_ex),
             len(val_ex), total, dm.schedule.rows_per_step, dm.layout, ckpt)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    finish_on_late_requeue_signal(trainer)  # a Slurm warning from here on must not kill the export
    if val_ex and not any("val_loss" in h and h["step"] == trainer.global_step for h in module.history):
        trainer.validate(module, datamodule=dm, verbose=False)  # the summary's val losses: after the last step

    full_sd = _full_state_dict(module)  # collective: every rank takes part
    adapter_dir = run_dir / "adapter"
    artifacts = {"adapter": str(adapter_dir), "train_log": str(step_log)}
    if cfg.train.checkpoint_every_n_steps:
        artifacts["checkpoints"] = str(out_dir / "checkpoints")
    if trainer.is_global_zero:
        if full_sd is not None:
            save_adapter(module.model, tok, adapter_dir, cfg.student.adapter, state_dict=full_sd)
        else:
            save_adapter(module.model, tok, adapter_dir, cfg.student.adapter)
        if exports:
            export_trained(cfg, run_dir, adapter_dir, artifacts)
    steps = [h for h in module.history if "loss" in h]
    vals = [h for h in module.history if "val_loss" in h]
    timed = steps[1:] or steps  # the first step includes warm-up
    done = int(trainer.global_step)
    sched = dm.schedule
    summary = {
        "final_loss": steps[-1]["loss"] if steps else None,
        # the loss on the final answer's tokens alone (after the thinking block), beside the full loss
        "final_loss_answer": steps[-1].get("loss_answer") if steps else None,
        "first_loss": steps[0]["loss"] if steps else None,
        "steps": int(trainer.global_step),
        "steps_this_run": len(steps),
        "resumed_from": ckpt,
        "supervised_tokens": int(sum(h["supervised_tokens"] for h in steps)),
        "masked_label_counts": {"supervised": stats.supervised_tokens, "masked": stats.masked_tokens},
        "rows": {"train": len(train_ex), "val": len(val_ex), **{k: v for k, v in asdict(stats).items()
                                                               if k not in ("supervised_tokens", "masked_tokens",
                                                                            "per_family")}},
        "dose_per_family": stats.per_family,  # train rows and supervised tokens per task family
        "supervised_tokens_per_s": (sum(h["supervised_tokens"] for h in timed) / sum(h["time_s"] for h in timed))
        if timed else None,
        "padding_share": (sum(h["padding_share"] for h in steps) / len(steps)) if steps else None,
        "peak_mem_mb": max((h["peak_mem_mb"] for h in steps), default=None),
        "val_loss": vals[-1]["val_loss"] if vals else None,
        "val_loss_answer": vals[-1].get("val_loss_answer") if vals else None,
        # the dose, over every step of the run (a resumed run included), from the fixed schedule
        "rows_seen": done * sched.rows_per_step,
        "supervised_tokens_trained": sched.tokens_through(done, [n_targets(e) for e in train_ex].__getitem__),
        "tokens_processed": sched.tokens_through(done, [len(e) for e in train_ex].__getitem__),
        "token_budget": budget,
        "world_size": int(trainer.world_size),
        "precision": precision,  # what ran; hardware.precision is what was asked for
        "precision_configured": cfg.hardware.precision,
        "backend": report.as_dict(),
        "attention": str(_unwrap(module.model).config._attn_implementation),
        # for the report's FLOPs estimate (artifacts/run_cost.py: 6 x params_total x supervised_tokens)
        "params_total": sum(p.numel() for p in _unwrap(module.model).parameters()),
        "params_trainable": sum(p.numel() for p in _unwrap(module.model).parameters() if p.requires_grad),
        "machine": machine(),
    }
    _finish_logger(trainer)
    return StageResult(artifacts=artifacts, summary=summary,
                       objective=-summary["final_loss"] if summary["final_loss"] is not None else None)
