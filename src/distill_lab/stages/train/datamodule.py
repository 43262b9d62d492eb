"""The DataModule: a deterministic, step-indexed schedule of micro-batches.

The training stream is the concatenation of per-epoch permutations of the train examples (epoch ``e``
shuffled with seed ``data_seed + e``). Optimizer step ``k`` consumes stream positions
``[k * B * A * W, (k + 1) * B * A * W)`` (B: ``train.batch_size`` per device, A: ``train.grad_accum``,
W: world size); rank ``r`` gets micro-batch ``j`` = the ``(j * W + r)``-th slice of ``B`` rows.

So a step's rows depend only on ``k``: resuming at step ``k`` just starts the dataset at ``k`` (no
sampler state to save), and every rank knows the step's global number of supervised targets (used to
normalise the loss over micro-batches and ranks) without communication.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from distill_lab.stages.train.packing import IGNORE, Example, pack_batch, pad_batch


def n_targets(e: Example) -> int:
    """Supervised next-token targets of a row (its first token is never a target)."""
    return sum(1 for x in e.labels[1:] if x != IGNORE)


class StepSchedule:
    def __init__(self, num_examples: int, batch_size: int, grad_accum: int, world_size: int, seed: int):
        assert num_examples > 0, "no training examples"
        self.n, self.B, self.A, self.W, self.seed = num_examples, batch_size, grad_accum, world_size, seed
        self._perms: dict[int, list[int]] = {}

    @property
    def rows_per_step(self) -> int:
        return self.B * self.A * self.W

    def steps_for_epochs(self, epochs: int) -> int:
        return max(1, math.ceil(epochs * self.n / self.rows_per_step))

    def tokens_through(self, steps: int, count) -> int:
        """``count(example index)`` summed over every row of the first ``steps`` optimizer steps."""
        return sum(count(i) for k in range(steps) for i in self.step_rows(k))

    def steps_for_tokens(self, budget: int, count, cap: int) -> tuple[int, int]:
        """(the fewest steps whose rows reach ``budget`` tokens by ``count(example index)``, the tokens they
        hold), searching at most ``cap`` steps; (cap, tokens) with tokens < budget when the cap comes first.
        The schedule is fixed in advance, so this is exact: the run ends within one step's tokens above the
        budget."""
        total = 0
        for k in range(cap):
            total += sum(count(i) for i in self.step_rows(k))
            if total >= budget:
                return k + 1, total
        return cap, total

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = torch.randperm(self.n, generator=g).tolist()
        return self._perms[epoch]

    def step_rows(self, step: int) -> list[int]:
        """Example indices of optimizer step ``step`` (all ranks, all micro-batches)."""
        start = step * self.rows_per_step
        return [self._perm(p // self.n)[p % self.n] for p in range(start, start + self.rows_per_step)]

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        rows = self.step_rows(step)
        return [rows[(j * self.W + rank) * self.B:(j * self.W + rank + 1) * self.B] for j in range(self.A)]


LAYOUTS = ("padded", "padding_free", "packed")


def layout_for(packing: bool, padding_free: bool) -> str:
    """``data.packing`` / ``data.padding_free`` -> how a micro-batch's rows become tensors."""
    return "packed" if packing else "padding_free" if padding_free else "padded"


def collate(examples: list[Example], layout: str, pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """``padded``: [B, T], each row padded to the longest. ``packed``: rows in sequences of at most
    ``max_length`` tokens. ``padding_free``: all rows end to end in one sequence [1, sum of lengths].
    The last two carry restarting ``position_ids`` and row ``segments`` (no attention across rows)."""
    if layout == "padded":
        return pad_batch(examples, pad_id)
    if layout == "packed":
        return pack_batch(examples, pad_id, max_length)
    assert layout == "padding_free", layout
    return pack_batch(examples, pad_id, sum(len(e) for e in examples))


class StepDataset(Dataset):
    """Item ``i`` = everything rank ``rank`` needs for optimizer step ``start + i``."""

    def __init__(self, examples: list[Example], schedule: StepSchedule, start: int, total: int, rank: int,
                 pad_id: int, layout: str, max_length: int):
        self.examples, self.schedule = examples, schedule
        self.start, self.total, self.rank = start, total, rank
        self.pad_id, self.layout, self.max_length = pad_id, layout, max_length

    def __len__(self) -> int:
        # Lightning restores the epoch's batch index on resume and stops the epoch at len(): keep the
        # nominal length of the whole run, whatever ``start`` is (``max_steps`` ends the run on time)
        return self.total

    def __getitem__(self, i: int) -> dict[str, Any]:
        step = self.start + i
        micro = []
        real = slots = 0
        for idx in self.schedule.micro_batches(step, self.rank):
            exs = [self.examples[j] for j in idx]
            batch = collate(exs, self.layout, self.pad_id, self.max_length)
            real += sum(len(e) for e in exs)
            slots += batch["input_ids"].numel()
            micro.append(batch)
        global_targets = sum(n_targets(self.examples[j]) for j in self.schedule.step_rows(step))
        return {"step": step, "micro": micro, "global_targets": global_targets, "real_tokens": real,
                "slots": slots}


class EvalDataset(Dataset):
    def __init__(self, examples: list[Example], batch_size: int, pad_id: int):
        self.batches = [examples[i:i + batch_size] for i in range(0, len(examples), batch_size)]
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return pad_batch(self.batches[i], self.pad_id)


def even_shard(examples: list[Example], rank: int, world: int) -> list[Example]:
    """Rank ``rank``'s share of ``examples`` (every ``world``-th), topped up to the same length on every
    rank with unsupervised copies (every label IGNORE: no loss, no count). Every rank then runs the same
    number of validation batches: under FSDP each forward is a collective, and a rank with one batch
    more would wait for the others forever."""
    mine = list(examples[rank::world])
    share = math.ceil(len(examples) / world)
    filler = examples[0] if examples else None
    while filler is not None and len(mine) < share:
        mine.append(Example(row_id=f"{filler.row_id}#pad", input_ids=filler.input_ids,
                            labels=[IGNORE] * len(filler.input_ids)))
    return mine


def _identity(x: Any) -> Any:
    return x


class SFTDataModule(L.LightningDataModule):
    def __init__(self, train: list[Example], val: list[Example], *, batch_size: int, grad_accum: int,
                 total_steps: int, seed: int, pad_id: int, layout: str, max_length: int,
                 num_workers: int = 0, world_size: int = 1):
        super().__init__()
        assert layout in LAYOUTS, layout
        self.train_examples, self.val_examples = train, val
        self.batch_size, self.total_steps = batch_size, total_steps
        self.pad_id, self.layout, self.max_length, self.num_workers = pad_id, layout, max_length, num_workers
        self.schedule = StepSchedule(len(train), batch_size, grad_accum, world_size, seed)

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer is not None else 0  # restored before this call
        rank = self.trainer.global_rank if self.trainer is not None else 0
        ds = StepDataset(self.train_examples, self.schedule, start, self.total_steps, rank, self.pad_id,
                         self.layout, self.max_length)
        return DataLoader(ds, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          collate_fn=_identity)

    def val_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        world = self.trainer.world_size if self.trainer is not None else 1
        mine = even_shard(self.val_examples, rank, world)
        return DataLoader(EvalDataset(mine, self.batch_size, self.pad_id), batch_size=None, shuffle=False,
                          collate_fn=_identity)
