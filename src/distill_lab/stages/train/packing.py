"""Batching of tokenized rows: padded (each batch only to its longest row) or packed.

Packed: the rows of one optimizer step are placed into as few sequences of at most ``max_length``
tokens as first-fit decreasing allows. ``position_ids`` restart at 0 for every row, and ``segments``
lists every row's ``(sequence, start, end)``: the trainer's CPU attention (``backends/cpu/attention.py``) runs
causal attention inside each row, so a token never attends across rows. ``cu_seqlens`` and
``max_seqlen`` give the same boundaries in the flattened [S x T] stream: the varlen contract of the
CUDA attention (``backends/cuda/varlen.py``).
Because a step packs exactly the rows it would otherwise pad, packed and unpacked training see the
same tokens and the same loss per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class Example:
    """One tokenized row ready for training."""

    row_id: str
    input_ids: list[int]
    labels: list[int]
    # first token of the final answer (after the thinking block): the supervised tokens from here on are
    # the answer's (``answer_labels``); None: the row marks no answer
    answer_start: int | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def answer_labels(self) -> list[int]:
        """``labels`` with everything before ``answer_start`` masked (all masked without an answer)."""
        k = len(self.labels) if self.answer_start is None else self.answer_start
        return [IGNORE] * k + list(self.labels[k:])


def pad_batch(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids/labels/answer_labels/attention_mask [B, T] with T = the longest row of this batch."""
    T = max(len(e) for e in examples)
    B = len(examples)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE, dtype=torch.long)
    answer = torch.full((B, T), IGNORE, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e)
        ids[b, :n] = torch.tensor(e.input_ids)
        labels[b, :n] = torch.tensor(e.labels)
        answer[b, :n] = torch.tensor(e.answer_labels())
        mask[b, :n] = 1
    return {"input_ids": ids, "labels": labels, "answer_labels": answer, "attention_mask": mask}


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of indices whose lengths sum to at most ``capacity`` (each length must fit alone)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        assert n <= capacity, f"row of {n} tokens does not fit a packed sequence of {capacity}"
        for b, r in enumerate(room):
            if n <= r:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(capacity - n)
    return bins


def pack_batch(examples: Sequence[Example], pad_id: int, max_length: int) -> dict[str, torch.Tensor]:
    """input_ids/labels/answer_labels/position_ids [S, T]: rows packed into S <= B sequences, positions restart per row;
    segments [R, 3]: ``(sequence, start, end)`` of each of the R rows.

    Padding at the end of a sequence gets its own restarting positions and IGNORE labels.
    """
    bins = first_fit_decreasing([len(e) for e in examples], max_length)
    T = max(sum(len(examples[i]) for i in b) for b in bins)
    S = len(bins)
    ids = torch.full((S, T), pad_id, dtype=torch.long)
    labels = torch.full((S, T), IGNORE, dtype=torch.long)
    answer = torch.full((S, T), IGNORE, dtype=torch.long)
    pos = torch.zeros((S, T), dtype=torch.long)
    segments = []
    for s, b in enumerate(bins):
        at = 0
        for i in sorted(b):
            e = examples[i]
            n = len(e)
            ids[s, at:at + n] = torch.tensor(e.input_ids)
            lab = torch.tensor(e.labels)
            lab[0] = IGNORE  # the first token of a row is never a target of the previous row
            labels[s, at:at + n] = lab
            ans = torch.tensor(e.answer_labels())
            ans[0] = IGNORE
            answer[s, at:at + n] = ans
            pos[s, at:at + n] = torch.arange(n)
            segments.append((s, at, at + n))
            at += n
        pos[s, at:] = torch.arange(T - at)
    cu_seqlens, max_seqlen = _cu_seqlens([[len(examples[i]) for i in sorted(b)] for b in bins], T)
    return {"input_ids": ids, "labels": labels, "answer_labels": answer, "position_ids": pos,
            "segments": torch.tensor(segments, dtype=torch.long),
            "cu_seqlens": cu_seqlens, "max_seqlen": torch.tensor(max_seqlen)}


def _cu_seqlens(lengths_per_sequence: list[list[int]], width: int) -> tuple[torch.Tensor, int]:
    """Boundaries over S sequences of ``width`` tokens flattened end to end: each sequence's rows, then
    its trailing padding (if any) as one more segment (it attends only to itself). Returns
    (int32 [K + 1], the longest segment)."""
    bounds = [0]
    longest = 0
    for s, rows in enumerate(lengths_per_sequence):
        at = s * width
        for n in rows:
            at += n
            bounds.append(at)
            longest = max(longest, n)
        end = (s + 1) * width
        if at < end:
            bounds.append(end)
            longest = max(longest, end - at)
    return torch.tensor(bounds, dtype=torch.int32), longest


def padding_share(batch: dict[str, torch.Tensor], real_tokens: int) -> float:
    """Share of the batch's token slots that hold no row token."""
    total = batch["input_ids"].numel()
    return 1.0 - real_tokens / total if total else 0.0
