"""The LightningModule: token-normalised SFT loss, manual optimization, FSDP2 sharding.

Loss of an optimizer step = (sum of token cross-entropies over every micro-batch on every rank) /
(the step's global number of supervised targets). Each micro-batch's backward gets its token sum
divided by that global count (times the world size, because DDP/FSDP average gradients over ranks),
so gradient accumulation and data parallelism weight every supervised token equally, whatever the
lengths of the rows in each micro-batch.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch

from distill_lab.backends.base import Backend
from distill_lab.backends.forward import unwrap
from distill_lab.console import ProgressLog
from distill_lab.stages.train.optimizers import build_optimizer

if TYPE_CHECKING:
    from distill_lab.config import Config

_unwrap = unwrap


def lr_lambda(name: str, warmup: int, total: int):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return f


def peak_memory_mb() -> float:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class SFTModule(L.LightningModule):
    def __init__(self, cfg: Config, model, total_steps: int, backend: Backend, step_log: Path | None = None):
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.backend = backend  # backends/select.py: chosen and prepared once, by the stage
        self.total_steps = total_steps
        self.automatic_optimization = False
        self.strict_loading = cfg.student.adapter == "full"  # adapters: checkpoints hold trainable weights only
        self.step_log = step_log
        self._progress: ProgressLog | None = None
        self._t_last = None
        self._val_sum = 0.0
        self._val_n = 0
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------ model setup
    @property
    def fsdp(self) -> bool:
        return self.cfg.hardware.strategy == "fsdp2"

    def configure_model(self) -> None:
        """FSDP2: ``fully_shard`` every decoder layer, then the root (ModelParallelStrategy calls this)."""
        if not self.fsdp or getattr(self, "_sharded", False):
            return
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = self.device_mesh["data_parallel"]
        mp = None
        if self.backend.traits.precision == "bf16-true":  # the precision that runs
            mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        kw = {"mesh": mesh, **({"mp_policy": mp} if mp else {})}
        for layer in _unwrap(self.model).model.layers:
            fully_shard(layer, **kw)
        fully_shard(self.model, **kw)
        self._sharded = True

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def configure_optimizers(self):
        oc = self.cfg.optimizer
        params = self.trainable_parameters()
        assert params, "no trainable parameters"
        opt = build_optimizer(params, oc, fsdp=self.fsdp)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(oc.scheduler, oc.warmup_steps, self.total_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ----------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int):
        step = int(batch["step"])
        assert step == self.global_step, f"data step {step} != optimizer step {self.global_step}"
        torch.manual_seed(self.cfg.seed * 7919 + step)  # dropout RNG is a function of the step: exact resume
        opt = self.optimizers()
        sched = self.lr_schedulers()
        total = int(batch["global_targets"])
        world = self.trainer.world_size
        t0 = self._t_last or time.perf_counter()
        local_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        local_n = 0
        answer_sum, answer_n = 0.0, 0  # the final answer's tokens (after the thinking block)
        for mb in batch["micro"]:
            mb = {k: v.to(self.device) for k, v in mb.items()}
            s, n, a_s, a_n = self.backend.loss_sums(self.model, mb)
            self.manual_backward(s * (world / max(total, 1)))
            local_sum += s.detach().double()
            local_n += n
            answer_sum += a_s
            answer_n += a_n
        clip = self.cfg.optimizer.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable_parameters(),
                                                   max_norm=clip if clip else float("inf"))
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()

        counts = torch.tensor([float(local_sum), float(local_n), float(batch["real_tokens"]), float(batch["slots"]),
                               answer_sum, float(answer_n)], dtype=torch.float64, device=self.device)
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        loss = float(counts[0]) / max(total, 1)
        assert int(counts[1]) == total, f"step {step}: {int(counts[1])} targets seen, schedule says {total}"
        now = time.perf_counter()
        dt = now - t0
        self._t_last = now
        rec = {"step": step + 1, "loss": loss,
               "loss_answer": float(counts[4]) / float(counts[5]) if float(counts[5]) > 0 else None,
               "answer_tokens": int(counts[5]), "lr": lr, "grad_norm": float(grad_norm),
               "supervised_tokens": total, "supervised_tokens_per_s": total / dt if dt > 0 else 0.0,
               "real_tokens_per_s": float(counts[2]) / dt if dt > 0 else 0.0,
               "padding_share": 1.0 - float(counts[2]) / max(float(counts[3]), 1.0),
               "peak_mem_mb": peak_memory_mb(), "time_s": dt}
        self.history.append(rec)
        # straight to the logger: Lightning's self.log machinery cost 6% of a tiny-student step
        if self.logger is not None and self.trainer.is_global_zero and (
                (step + 1) % self.cfg.train.log_every_n_steps == 0 or step + 1 == self.total_steps):
            self.logger.log_metrics({f"train/{k}": v for k, v in rec.items() if k != "step" and v is not None},
                                    step=step + 1)
        if self.trainer.progress_bar_callback is not None:
            self.log("loss", loss, prog_bar=True, logger=False, rank_zero_only=True, batch_size=1)  # terminal bar
        elif self._progress is not None:  # no terminal (Slurm, CI, a pipe): a log line at a steady cadence
            self._progress.set(step + 1, f"loss {loss:.4f}, lr {lr:.2e}, {rec['supervised_tokens_per_s']:.0f} "
                                         f"supervised tok/s")
        if self.step_log is not None and self.trainer.is_global_zero:
            with open(self.step_log, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return torch.tensor(loss)

    def on_train_start(self) -> None:
        self._t_last = time.perf_counter()
        if self.trainer.progress_bar_callback is None and self.trainer.is_global_zero:
            self._progress = ProgressLog(logging.getLogger("distill_lab.stages.train"), "train:", self.total_steps,
                                         "steps", start=self.global_step)

    # --------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_sum, self._val_n = 0.0, 0
        self._val_answer_sum, self._val_answer_n = 0.0, 0

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        s, n, a_s, a_n = self.backend.loss_sums(self.model, batch)
        self._val_sum += float(s)
        self._val_n += n
        self._val_answer_sum += a_s
        self._val_answer_n += a_n

    def on_validation_epoch_end(self) -> None:
        t = torch.tensor([self._val_sum, float(self._val_n), self._val_answer_sum, float(self._val_answer_n)],
                         dtype=torch.float64, device=self.device)
        t = self.trainer.strategy.reduce(t, reduce_op="sum")
        if float(t[1]) > 0:
            val = float(t[0]) / float(t[1])
            rec = {"step": self.global_step, "val_loss": val,
                   "val_loss_answer": float(t[2]) / float(t[3]) if float(t[3]) > 0 else None}
            self.log("val/loss", val, rank_zero_only=True, batch_size=1)
            if rec["val_loss_answer"] is not None:
                self.log("val/loss_answer", rec["val_loss_answer"], rank_zero_only=True, batch_size=1)
            self.history.append(rec)
            if self.step_log is not None and self.trainer.is_global_zero:
                with open(self.step_log, "a") as f:
                    f.write(json.dumps(rec) + "\n")

    # --------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adapters: keep only trainable weights (the base is reloaded from the student cache); under
        FSDP2 too (``stages/train/fsdp_checkpoint.py`` loads such a checkpoint)."""
        if self.cfg.student.adapter == "full":
            return
        keep = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
