"""The ``rl`` stage: GRPO after SFT, with the task families' verifiers as rewards.

It starts from ``rl.adapter_dir`` (a train run's adapter: peft LoRA, or a full checkpoint for a merged
or fully fine-tuned student) and rolls out the prompts of ``rl.split`` in ``rl.dataset_dir``.

Why TRL's ``GRPOTrainer`` (decided and checked against trl 1.16 on this machine): it takes our pieces
as they are, so nothing of the algorithm is re-implemented here.
- chat rendering: the prompts are rendered here with the student's reasoning-aware template
  (``students.chat.render_prompt``, thinking on, as eval renders them) and passed as plain text, which
  GRPOTrainer tokenizes without applying a template of its own;
- adapters: a peft model with a trained adapter gets a frozen copy of it (``ref``) as the reference
  policy, so the KL term is to the SFT policy, not to the base (peft >= 0.20); a full checkpoint gets a
  second copy as its reference;
- CPU: rollouts are HF ``generate`` with a KV cache, batched over the whole step (``prompts_per_step *
  group_size``), on the LoRA merged into the base (``rollout_weights.py``), from a bf16 copy where the
  CPU multiplies bf16 natively (``rollout_precision.py``); on a GPU ``rl.vllm=colocate|server`` switches to vLLM (README);
- rewards: plain functions of the completions' token ids (``rewards.py``).
Its loss is GRPO's (``loss_type=grpo``): advantages = (r - group mean) / group std, per-token ratio
clipped to [1 - eps, 1 + eps], plus ``beta`` times the k3 KL estimate to the reference (weighted by
the ratio, TRL's off-policy correction: 1 when ``rl.iterations=1``), averaged per sequence and then over
the batch. ``tests/test_rl_loss.py`` checks that against a group computed by hand.

Artifacts: ``adapter/`` (what ``eval.adapter_dir`` takes, same layout as train's), ``rl_log.jsonl``
(one line per step: reward mean/std overall and per family, KL, completion length, share truncated),
``checkpoints/`` (re-running the same command resumes from the last one).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.errors import ConfigError
from distill_lab.stages.common import StageResult
from distill_lab.stages.rl import rollout_precision, rollout_weights
from distill_lab.stages.rl.prompts import check_budget, load_prompts
from distill_lab.stages.rl.rewards import make_reward_funcs
from distill_lab.stages.runtime import load_placed_student, on_gpu, torch_threads

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
# TRL's log keys -> ours (W&B and rl_log.jsonl)
LOG_KEYS = {"reward": "rl/reward_mean", "reward_std": "rl/reward_std", "kl": "rl/kl",
            "completions/mean_length": "rl/completion_length", "completions/clipped_ratio": "rl/truncated_share",
            "rewards/correct/mean": "rl/correct_mean", "rewards/format/mean": "rl/format_mean",
            "loss": "rl/loss", "learning_rate": "rl/lr", "entropy": "rl/entropy",
            "clip_ratio/region_mean": "rl/clip_share", "frac_reward_zero_std": "rl/flat_group_share"}


def stop_ids(tokenizer: Any, model: Any) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, known end-of-turn tokens it has, the model's eos."""
    ids: list[int] = []
    cands: list[Any] = [tokenizer.eos_token_id, *(tokenizer.get_vocab().get(t) for t in END_OF_TURN_TOKENS),
                        getattr(model.generation_config, "eos_token_id", None)]
    for c in cands:
        for i in c if isinstance(c, list | tuple) else [c]:
            if isinstance(i, int) and i >= 0 and i not in ids:
                ids.append(i)
    if not ids:
        raise ValueError("the student's tokenizer has no eos and no known end-of-turn token: cannot stop rollouts")
    return ids


def render_prompts(tokenizer: Any, prompts: list) -> list[str]:
    """Each prompt as the student sees it before answering (chat template, thinking on). A tokenizer
    that adds BOS to any text gets the text without the template's own BOS (else it would be doubled)."""
    from distill_lab.students.chat import render_prompt

    texts = [render_prompt(tokenizer, p.messages, enable_thinking=True) for p in prompts]
    bos = tokenizer.bos_token
    adds = bool(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    return [t[len(bos):] if adds and t.startswith(bos) else t for t in texts]


def last_checkpoint(ckpt_dir: Path) -> str | None:
    steps = []
    for d in ckpt_dir.glob("checkpoint-*"):
        if d.name.split("-")[-1].isdigit() and (d / "trainer_state.json").is_file():
            steps.append((int(d.name.split("-")[-1]), d))
    return str(max(steps)[1]) if steps else None


def check(cfg: Config) -> int:
    """Every check that needs no model: pointers, vLLM, the prompts and the completion budget against
    the teacher's longest answer (the pipeline calls it before training). Returns that answer's tokens."""
    from distill_lab.students.loader import load_tokenizer

    check_start(cfg)
    prompts, _ = load_prompts(cfg.rl.dataset_dir, cfg.rl.split, cfg.rl.max_prompts)
    check_count(cfg, prompts)
    return check_budget(prompts, load_tokenizer(cfg.student), cfg.rl.max_completion_tokens,
                        cfg.rl.allow_short_completions)


def check_count(cfg: Config, prompts: list) -> None:
    if len(prompts) < cfg.rl.prompts_per_step:
        raise ConfigError(f"rl.prompts_per_step: {cfg.rl.prompts_per_step} prompts a step, but split "
                          f"{cfg.rl.split!r} of {cfg.rl.dataset_dir} has {len(prompts)} verifiable prompts "
                          f"(rl.max_prompts={cfg.rl.max_prompts})")


def check_start(cfg: Config) -> None:
    """The free checks: pointers exist, vLLM only where it can run."""
    import importlib.util

    rc = cfg.rl
    rollout_weights.check(cfg)
    # the choices that need no model (an unmerged adapter is refused in build_trainer, once it is loaded)
    rollout_precision.decide(cfg, "vllm-sync" if rc.vllm else "merged", "cuda" if on_gpu(cfg) else "cpu")
    if importlib.util.find_spec("trl") is None:
        raise RuntimeError("the rl stage runs TRL's GRPOTrainer: pip install 'distill_lab[rl]'")
    if not rc.dataset_dir:
        raise ConfigError("rl.dataset_dir: required (a dataset folder from `generate`)")
    if rc.adapter_dir is not None:
        from distill_lab.students.loader import adapter_kind

        try:
            adapter_kind(rc.adapter_dir)
        except FileNotFoundError as e:
            raise ConfigError(f"rl.adapter_dir: {e}") from None
    if rc.vllm is not None:
        import torch

        if not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None:
            raise ConfigError(f"rl.vllm={rc.vllm}: needs a CUDA GPU and `pip install vllm` (README, RL after SFT)")


def run(cfg: Config, run_dir: Path) -> StageResult:
    check_start(cfg)
    with torch_threads(cfg.hardware.threads):
        return _run(cfg, Path(run_dir))


def _run(cfg: Config, run_dir: Path) -> StageResult:
    from distill_lab.students.loader import adapter_kind, student_tokenizer

    rc = cfg.rl
    t0 = time.perf_counter()
    prompts, skipped = load_prompts(rc.dataset_dir, rc.split, rc.max_prompts)
    check_count(cfg, prompts)
    tokenizer = student_tokenizer(cfg.student, rc.adapter_dir)  # one tokenizer: the budget check and training
    longest = check_budget(prompts, tokenizer, rc.max_completion_tokens, rc.allow_short_completions)
    log.info("rl: %d prompts of %s (%d skipped: nothing to verify), teacher's longest answer %d tokens, "
             "budget %d", len(prompts), rc.split, skipped, longest, rc.max_completion_tokens)

    kind = adapter_kind(rc.adapter_dir) if rc.adapter_dir else ("full" if cfg.student.adapter == "full" else "peft")
    model, tokenizer = load_placed_student(cfg, rc.adapter_dir, for_training=True, tokenizer=tokenizer)
    stops = stop_ids(tokenizer, model)
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    texts = render_prompts(tokenizer, prompts)

    from transformers import TrainerCallback

    gpu = on_gpu(cfg)
    ckpt_dir = run_dir / "checkpoints"
    log_path = run_dir / "rl_log.jsonl"
    resume = last_checkpoint(ckpt_dir) if rc.resume else None
    if resume is None and log_path.exists():
        log_path.unlink()  # a fresh start: the old log belongs to a run no checkpoint continues
    elif resume is not None:
        _trim_log(log_path, int(resume.rsplit("-", 1)[-1]))

    from distill_lab.console import ProgressLog
    from distill_lab.tracking.loggers import open_run

    with open_run(cfg, "rl", run_dir) as lg:
        rollout = {"tokens": 0, "seconds": 0.0}
        start = int(resume.rsplit("-", 1)[-1]) if resume else 0
        progress = ProgressLog(log, "rl:", rc.steps, "steps", start=start)

        class Forward(TrainerCallback):
            """TRL's per-step logs -> rl_log.jsonl and the project's logger, under our names."""

            def on_log(self, args, state, control, logs=None, **kw):
                if not logs or "loss" not in logs and "reward" not in logs:
                    return
                row = {"step": state.global_step}
                for k, v in logs.items():
                    if v is None:
                        continue
                    if k in LOG_KEYS:
                        row[LOG_KEYS[k]] = v
                    elif k.startswith("reward_family/"):
                        row["rl/reward/" + k[len("reward_family/"):]] = v
                with log_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                lg.log_metrics({k: v for k, v in row.items() if k != "step"}, step=state.global_step)
                progress.set(state.global_step, _progress_extra(row))

        trainer = build_trainer(cfg, model, tokenizer, prompts, texts, stops, ckpt_dir, gpu, [Forward()])
        # off a terminal (disable_tqdm) transformers prints every log dict to stdout; the lines above say it once
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        _time_rollouts(trainer, rollout)
        log.info("rl: GRPO for %d steps of %d prompts x %d completions (beta %g, clip %g, lr %g), resume from %s",
                 rc.steps, rc.prompts_per_step, rc.group_size, rc.beta, rc.clip_eps, rc.lr, resume)
        trainer.train(resume_from_checkpoint=resume)
        out = run_dir / "adapter"
        _save(trainer.model, tokenizer, out, kind, cfg.student.adapter)
        if lg.enabled:
            lg.log_artifact(out, f"rl-adapter-{cfg.student.name}", "model")

    steps = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    summary = {
        "steps": trainer.state.global_step, "prompts": len(prompts), "skipped_prompts": skipped,
        "teacher_longest_tokens": longest, "resumed_from": resume, "adapter_kind": kind,
        "reward_first": first.get("rl/reward_mean"), "reward_last": last.get("rl/reward_mean"),
        "reward_mean": _mean([s.get("rl/reward_mean") for s in steps]),
        "kl_last": last.get("rl/kl"), "truncated_share_mean": _mean([s.get("rl/truncated_share") for s in steps]),
        "rollout_weights": trainer.rollout_weights, "rollout_precision": trainer.rollout_precision,
        "rollout_precision_why": trainer.rollout_precision_why, "rollout_tokens": rollout["tokens"], "rollout_seconds": round(rollout["seconds"], 2),
        "rollout_tokens_per_s": round(rollout["tokens"] / rollout["seconds"], 1) if rollout["seconds"] else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info("rl: %s", summary)
    return StageResult(artifacts={"adapter": str(out), "rl_log": str(log_path)}, summary=summary,
                       objective=summary["reward_mean"])


def _progress_extra(row: dict[str, Any]) -> str:
    """A step's figures for its progress line: reward (its correct part), KL, completion length, truncation."""
    parts = []
    if row.get("rl/reward_mean") is not None:
        correct = row.get("rl/correct_mean")
        parts.append(f"reward {row['rl/reward_mean']:.3f}" + (f" (correct {correct:.3f})" if correct is not None else ""))
    if row.get("rl/kl") is not None:
        parts.append(f"KL {row['rl/kl']:.4f}")
    if row.get("rl/completion_length") is not None:
        parts.append(f"{row['rl/completion_length']:.0f} tokens")
    if row.get("rl/truncated_share"):
        parts.append(f"{100 * row['rl/truncated_share']:.0f}% truncated")
    return ", ".join(parts)


def grpo_args(cfg: Config, ckpt_dir: Path, on_gpu: bool):
    """TRL's ``GRPOConfig`` from the ``rl`` group: GRPO's loss and group-scaled advantages, our budget,
    no logging or progress bar of its own (the stage's callback logs), checkpoints every ``save_steps``."""
    from trl import GRPOConfig

    rc = cfg.rl
    bf16 = on_gpu and cfg.hardware.precision in ("auto", "bf16-mixed", "bf16-true")
    return GRPOConfig(
        output_dir=str(ckpt_dir), seed=cfg.seed, data_seed=cfg.seed, max_steps=rc.steps,
        per_device_train_batch_size=rc.prompts_per_step * rc.group_size, gradient_accumulation_steps=1,
        num_generations=rc.group_size, num_iterations=rc.iterations, max_completion_length=rc.max_completion_tokens,
        temperature=rc.temperature, top_p=1.0, top_k=0, beta=rc.beta, epsilon=rc.clip_eps, loss_type="grpo",
        use_bias_correction_kl=True, importance_sampling_level="token", top_entropy_quantile=1.0,
        scale_rewards="group", multi_objective_aggregation="sum_then_normalize",
        reward_weights=[rc.reward.correct, rc.reward.format],
        learning_rate=rc.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        logging_steps=1, save_strategy="steps", save_steps=rc.save_steps, save_total_limit=2,
        report_to=[], disable_tqdm=True, use_cpu=not on_gpu, bf16=bf16, fp16=False,
        gradient_checkpointing=False, remove_unused_columns=False, dataloader_num_workers=0,
        use_vllm=rc.vllm is not None, vllm_mode=rc.vllm or "colocate",
        vllm_server_base_url=rc.vllm_server if rc.vllm == "server" else None,
    )


def build_trainer(cfg: Config, model: Any, tokenizer: Any, prompts: list, texts: list[str], stops: list[int],
                  ckpt_dir: Path, on_gpu: bool, callbacks: list | None = None):
    """``GRPOTrainer`` over the rendered prompts, with the families' rewards weighted by ``rl.reward``."""
    from datasets import Dataset
    from trl import GRPOTrainer

    ds = Dataset.from_dict({"prompt": texts, "task": [p.task for p in prompts],
                            "reference": [p.reference for p in prompts],
                            "prompt_id": [p.prompt_id for p in prompts]})
    funcs = make_reward_funcs(tokenizer, stops)
    funcs[0].weights.update(correct=cfg.rl.reward.correct, format=cfg.rl.reward.format)  # type: ignore[attr-defined]
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=grpo_args(cfg, ckpt_dir, on_gpu), train_dataset=ds,
                          processing_class=tokenizer, callbacks=callbacks or [])
    weights = rollout_weights.choose(cfg, trainer.model)
    trainer.rollout_precision, trainer.rollout_precision_why = rollout_precision.decide(
        cfg, weights, "cuda" if on_gpu else "cpu")
    if trainer.rollout_precision == "bf16":
        rollout_precision.apply(trainer)  # a bf16 copy holding the merged LoRA, refreshed after each step
        trainer.rollout_weights = weights
    else:
        trainer.rollout_weights = rollout_weights.apply(cfg, trainer)  # merged around generate (rl.merge_for_rollouts)
    log.info("rl: rollouts on %s weights in %s (%s)", trainer.rollout_weights, trainer.rollout_precision,
             trainer.rollout_precision_why)
    return trainer


def _mean(xs: list[Any]) -> float | None:
    v = [x for x in xs if x is not None]
    return sum(v) / len(v) if v else None


def _trim_log(log_path: Path, step: int) -> None:
    """Keep the log lines up to the checkpoint being resumed (later steps are re-run)."""
    if not log_path.exists():
        return
    keep = [x for x in log_path.read_text().splitlines() if x.strip() and json.loads(x)["step"] <= step]
    log_path.write_text("".join(k + "\n" for k in keep))


def _time_rollouts(trainer: Any, acc: dict[str, Any]) -> None:
    """Count generated tokens and the seconds spent generating (the summary's rollout tokens/s)."""
    inner = trainer._generate_single_turn

    def timed(*a: Any, **k: Any):
        t = time.perf_counter()
        completion_ids, logprobs = inner(*a, **k)
        acc["seconds"] += time.perf_counter() - t
        acc["tokens"] += sum(len(c) for c in completion_ids)
        return completion_ids, logprobs

    trainer._generate_single_turn = timed


def _save(model: Any, tokenizer: Any, out: Path, kind: str, adapter: str) -> None:
    """``adapter/`` in train's layout: the trained adapter only (not TRL's frozen ``ref`` copy), or the
    full checkpoint with its marker."""
    out.mkdir(parents=True, exist_ok=True)
    if kind == "peft":
        model.save_pretrained(str(out), selected_adapters=["default"])
    else:
        model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    (out / "distill_lab_adapter.json").write_text(json.dumps({"kind": kind, "adapter": adapter, "rl": "grpo"}))
