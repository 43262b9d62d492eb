"""Packing: rows never attend across each other, positions restart per row, fewer empty slots."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill_lab.backends.forward import token_loss_sum
from distill_lab.stages.train.packing import IGNORE, Example, first_fit_decreasing, pack_batch, pad_batch
from distill_lab.students import load_student
from tests.conftest import compose_config


def _examples(lengths: list[int], seed: int = 0) -> list[Example]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(5, 260, (n,), generator=g).tolist()
        labels = [IGNORE] * (n // 2) + ids[n // 2:]
        out.append(Example(f"r{i}", ids, labels))
    return out


def test_first_fit_decreasing_respects_capacity():
    bins = first_fit_decreasing([300, 200, 120, 90, 60, 20], 400)
    assert sorted(i for b in bins for i in b) == list(range(6))
    assert all(sum([300, 200, 120, 90, 60, 20][i] for i in b) <= 400 for b in bins)
    assert len(bins) == 2


def test_packed_batch_layout_and_padding_share():
    exs = _examples([300, 40, 200, 25, 120, 35])
    padded = pad_batch(exs, pad_id=0)
    packed = pack_batch(exs, pad_id=0, max_length=400)
    assert padded["input_ids"].shape == (6, 300)
    assert packed["input_ids"].shape[0] < 6 and packed["input_ids"].shape[1] <= 400
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    pos = packed["position_ids"]
    assert int((pos == 0).sum()) >= 6  # one restart per row (plus the padding tails)
    # every row's tokens appear, contiguous, with positions 0..n-1 and its own labels
    flat_ids, flat_pos = packed["input_ids"].tolist(), pos.tolist()
    for e in exs:
        hits = [(s, t) for s, seq in enumerate(flat_ids) for t in range(len(seq) - len(e) + 1)
                if seq[t:t + len(e)] == e.input_ids and flat_pos[s][t:t + len(e)] == list(range(len(e)))]
        assert hits, e.row_id
    targets = lambda b: int((b["labels"][:, 1:] != IGNORE).sum())  # noqa: E731
    assert targets(packed) == targets(padded)


def test_packed_rows_do_not_attend_across_rows():
    cfg = compose_config(["student=tiny"], stage="train").student
    model, _ = load_student(cfg)
    exs = _examples([30, 50, 20, 45], seed=1)
    with torch.no_grad():
        s_pad, n_pad = token_loss_sum(model, pad_batch(exs, 0))
        s_pack, n_pack = token_loss_sum(model, pack_batch(exs, 0, max_length=100))
        padded = pad_batch(exs, 0)
        sel = padded["labels"][:, 1:] != IGNORE
        logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        s_dense = F.cross_entropy(logits[:, :-1][sel].float(), padded["labels"][:, 1:][sel], reduction="sum")
    assert n_pad == n_pack
    assert abs(float(s_pad) - float(s_pack)) / float(s_pad) < 1e-5
    assert abs(float(s_pad) - float(s_dense)) / float(s_pad) < 1e-5  # the chunked sparse LM head is exact


def test_validation_shards_are_even_across_ranks():
    from distill_lab.stages.train.datamodule import EvalDataset, even_shard

    exs = _examples([5, 7, 9, 11, 13, 15, 17], seed=2)
    for world in (1, 2, 3, 4, 7, 8):
        shards = [even_shard(exs, r, world) for r in range(world)]
        batches = [len(EvalDataset(s, 2, 0)) for s in shards]
        assert len(set(batches)) == 1, (world, batches)  # FSDP: every rank runs the same forwards
        real = sorted(e.row_id for s in shards for e in s if any(lab != IGNORE for lab in e.labels))
        assert real == sorted(e.row_id for e in exs)  # every row validated once, on some rank
        for s in shards:
            for e in s:
                if e.row_id.endswith("#pad"):
                    assert all(lab == IGNORE for lab in e.labels)  # filler adds no loss and no count
